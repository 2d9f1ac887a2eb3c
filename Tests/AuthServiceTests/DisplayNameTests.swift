import MessengerContracts
import Testing

@testable import AuthService

@Suite("display names")
struct DisplayNameTests {
    @Test("stored trimmed and in NFC; right-to-left text and its marks are kept")
    func normalised() throws {
        #expect(try Validation.displayName("  Jose\u{301}  ") == "Jos\u{E9}")
        #expect(try Validation.displayName("Jose\u{301}").unicodeScalars.count == 4)
        #expect(try Validation.displayName("\u{644}\u{64A}\u{644}\u{649}\u{200F}") == "\u{644}\u{64A}\u{644}\u{649}\u{200F}")
        #expect(try Validation.displayName("👩‍👩‍👧") == "👩‍👩‍👧")
        #expect(try Validation.searchQuery(" Jose\u{301} ") == "Jos\u{E9}")
    }

    @Test("a name that shows nothing, or reorders the text around it, is refused")
    func refused() {
        for name in [
            "", "   ", "\u{FEFF}", "\u{200B}\u{200D}", "\u{3164}", "\u{AD}", String(repeating: "d", count: 65),
            "evil\u{202E}gnp.exe", "\u{2067}name\u{2069}", "\u{202A}a", "tab\there",
        ] {
            #expect(throws: ServiceError.self, "\(name.unicodeScalars.map { String($0.value, radix: 16) })") {
                try Validation.displayName(name)
            }
        }
    }
}
