import Foundation

extension UUID {
    /// A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then random bits.
    /// Ids made later sort later, which keeps B-tree inserts local.
    public static func v7(at date: Date = Date()) -> UUID {
        let milliseconds = UInt64(max(0, date.timeIntervalSince1970 * 1000))
        var bytes = SecureRandom.uuidBytes()
        withUnsafeMutableBytes(of: &bytes) { bytes in
            for index in 0..<6 {
                bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (8 * (5 - index)))
            }
            bytes[6] = (bytes[6] & 0x0F) | 0x70  // version 7
            bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        }
        return UUID(uuid: bytes)
    }
}
