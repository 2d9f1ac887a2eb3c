/// Engine.IO session ids and Socket.IO socket ids: 120 random bits, URL-safe base64 (20
/// characters), as the reference server makes them.
enum RandomID {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        // Two draws, not fifteen: each draw is one getrandom(2) system call.
        var words: (UInt64, UInt64) = (generator.next(), generator.next())
        return withUnsafeBytes(of: &words) { random in
            // Encoded by hand: Foundation's base64 and two replacements were a few percent of the
            // gateway's CPU in a reconnect storm (every connection makes two ids).
            String(unsafeUninitializedCapacity: 20) { text in
                for group in 0..<5 {
                    let triple =
                        UInt32(random[group * 3]) << 16 | UInt32(random[group * 3 + 1]) << 8 | UInt32(random[group * 3 + 2])
                    for position in 0..<4 {
                        text[group * 4 + position] = Self.alphabet[Int(triple >> (18 - 6 * UInt32(position)) & 63)]
                    }
                }
                return 20
            }
        }
    }
}
