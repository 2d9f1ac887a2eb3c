import MessengerServiceKit
import Testing

@testable import AuthService

/// ``AuthSettings``: what auth refuses to start with.
@Suite("Auth settings")
struct AuthSettingsTests {
    @Test("JWT_SECRET must be at least 32 bytes: the JWKS lets anyone test guesses of a short one offline")
    func shortSecretRefused() throws {
        #expect(throws: ConfigurationError.self) {
            try AuthSettings(environment: ServiceEnvironment(["JWT_SECRET": "change-me"]))
        }
        let settings = try AuthSettings(environment: ServiceEnvironment(["JWT_SECRET": String(repeating: "k", count: 32)]))
        guard case .secret = settings.keySource else {
            Issue.record("a 32-byte secret is not the key's source")
            return
        }
    }
}
