import Crypto
import Foundation
import MessengerContracts
import MessengerServiceKit
import MessengerTokens
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

    @Test("a signing key that is not an Ed25519 private key in PEM is refused, naming its variable")
    func badKeyRefused() throws {
        for (variable, value) in [
            ("JWT_PRIVATE_KEY", "not a key"),
            ("JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
        ] {
            #expect {
                try AuthSettings(environment: ServiceEnvironment([variable: value]))
            } throws: { error in
                (error as? ConfigurationError)?.variable == variable
            }
        }
        let key = Curve25519.Signing.PrivateKey().pemRepresentation
        let settings = try AuthSettings(environment: ServiceEnvironment(["JWT_PRIVATE_KEY": key]))
        guard case .configured = settings.keySource else {
            Issue.record("a valid PEM key is not the key's source")
            return
        }
    }

    @Test("the previous public keys file gives one verification key per PEM; a bad one is refused, naming the file's variable")
    func previousPublicKeys() throws {
        let old = Curve25519.Signing.PrivateKey()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("previous-\(UUID()).pem").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let secret = ["JWT_SECRET": String(repeating: "k", count: 32), "JWT_PREVIOUS_PUBLIC_KEYS_FILE": path]
        try (old.publicKey.pemRepresentation + "\n" + Curve25519.Signing.PrivateKey().publicKey.pemRepresentation)
            .write(toFile: path, atomically: true, encoding: .utf8)
        let settings = try AuthSettings(environment: ServiceEnvironment(secret))
        #expect(settings.previousPublicKeys.count == 2)
        #expect(settings.previousPublicKeys.first?.kid == SigningKey(old).kid)
        try "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            try AuthSettings(environment: ServiceEnvironment(secret))
        } throws: { error in
            (error as? ConfigurationError)?.variable == "JWT_PREVIOUS_PUBLIC_KEYS_FILE"
        }
    }

    @Test("the display name's limit is the contract's 64 unless DISPLAY_NAME_MAX_LENGTH sets it (1...256)")
    func displayNameLimit() throws {
        #expect(try AuthSettings(environment: ServiceEnvironment([:])).maximumDisplayNameLength == 64)
        let settings = try AuthSettings(environment: ServiceEnvironment(["DISPLAY_NAME_MAX_LENGTH": "20"]))
        #expect(settings.maximumDisplayNameLength == 20)
        #expect(try Validation.displayName(String(repeating: "n", count: 20), maximumLength: 20).count == 20)
        #expect(throws: ServiceError.self) { try Validation.displayName(String(repeating: "n", count: 21), maximumLength: 20) }
        #expect(try Validation.displayName(String(repeating: "n", count: 100), maximumLength: 256).count == 100)
        for refused in ["0", "257", "many"] {
            #expect {
                try AuthSettings(environment: ServiceEnvironment(["DISPLAY_NAME_MAX_LENGTH": refused]))
            } throws: { error in
                (error as? ConfigurationError)?.variable == "DISPLAY_NAME_MAX_LENGTH"
            }
        }
    }
}
