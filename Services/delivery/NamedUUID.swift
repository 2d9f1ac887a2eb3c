import Crypto
import Foundation

extension UUID {
    /// The UUID (version 8, RFC 9562) named by `name`: the first 16 bytes of its SHA-256, so the
    /// same name always gives the same id (an event derived from others gets a stable id that
    /// inboxes can deduplicate).
    static func named(_ name: String) -> UUID {
        var bytes = Array(SHA256.hash(data: Data(name.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9],
                bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
