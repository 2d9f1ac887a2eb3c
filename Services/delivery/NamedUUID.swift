import Crypto
import Foundation

extension UUID {
    /// The UUID (version 8, RFC 9562) named by `name` and placed in time by `origin`: the first
    /// 48 bits are `origin`'s (a version 7 id's Unix milliseconds), the rest are the name's
    /// SHA-256. The same name and origin always give the same id (an event derived from others
    /// gets a stable id that inboxes can deduplicate), and ids derived from later origins sort
    /// later, so they go to the right edge of the indexes on event ids instead of a random leaf
    /// of each (a random id made every insert read and dirty a page of a large index).
    static func named(_ name: String, orderedLike origin: UUID) -> UUID {
        var bytes = Array(SHA256.hash(data: Data(name.utf8)).prefix(16))
        withUnsafeBytes(of: origin.uuid) { origin in
            for index in 0..<6 { bytes[index] = origin[index] }
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
