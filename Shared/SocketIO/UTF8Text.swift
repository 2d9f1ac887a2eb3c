/// Text from bytes that must be valid UTF-8.
///
/// `String(validating:as:)` is generic over the byte sequence and, called from here, goes through
/// the runtime's generic metadata on every call (about 5 % of the gateway's CPU in a profile).
/// Most text on the wire is ASCII, which needs no validation: that case is decoded directly.
public enum UTF8Text {
    @inlinable
    public static func string<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String? {
        let ascii =
            bytes.withContiguousStorageIfAvailable { buffer in
                buffer.allSatisfy { $0 < 0x80 }
            } ?? false
        if ascii { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }
}
