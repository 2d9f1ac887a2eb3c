import Foundation

/// Engine.IO session ids and Socket.IO socket ids: 120 random bits, URL-safe base64 (20
/// characters), as the reference server makes them.
enum RandomID {
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        // Two draws, not fifteen: each draw is one getrandom(2) system call.
        var words: (UInt64, UInt64) = (generator.next(), generator.next())
        let bytes = withUnsafeBytes(of: &words) { Data($0.prefix(15)) }
        return bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
}
