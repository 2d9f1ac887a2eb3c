import Foundation
import MessengerContracts
import MessengerServiceKit
import MessengerTokens

/// The auth service's own settings (see docs/auth.md), read once at start.
struct AuthSettings: Sendable {
    /// Where the signing key comes from, strongest first.
    enum KeySource: Sendable {
        /// `JWT_PRIVATE_KEY_FILE` or `JWT_PRIVATE_KEY`, read and checked with the settings.
        case configured(SigningKey)
        case secret(String)
        case generated
    }

    var keySource: KeySource
    /// The shortest `JWT_SECRET` taken (32 random bytes is what the derived key is worth).
    static let minimumSecretBytes = 32
    /// Older public keys still accepted during a rotation (`JWT_PREVIOUS_PUBLIC_KEYS_FILE`).
    var previousPublicKeys: [JSONWebKey]
    var audience: TokenAudience
    var accessTokenLifetime: Duration
    var refreshTokenLifetime: Duration
    var bcryptCost: UInt8
    var throttle: LoginThrottle.Limits
    var registrations: RegistrationThrottle.Limits
    /// How often expired sessions, tokens and login counters are pruned (``AuthPruner``).
    var pruneInterval: Duration
    /// Code points in a display name (`DISPLAY_NAME_MAX_LENGTH`, the contract's 64 by default;
    /// at most 256, four times it, as messaging's limits).
    var maximumDisplayNameLength: Int

    init(environment: ServiceEnvironment) throws {
        if let path = environment.optional("JWT_PRIVATE_KEY_FILE") {
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(variable: "JWT_PRIVATE_KEY_FILE", problem: "cannot be read: \(path)")
            }
            self.keySource = .configured(try Self.privateKey(pem, variable: "JWT_PRIVATE_KEY_FILE"))
        } else if let pem = environment.optional("JWT_PRIVATE_KEY") {
            self.keySource = .configured(
                try Self.privateKey(pem.replacingOccurrences(of: "\\n", with: "\n"), variable: "JWT_PRIVATE_KEY"))
        } else if let secret = environment.optional("JWT_SECRET") {
            // The key's public half is in the JWKS for anyone to test guesses of the secret
            // against, offline: a short one (an old HS256 secret, say) would give the key away.
            guard secret.utf8.count >= Self.minimumSecretBytes else {
                throw ConfigurationError(
                    variable: "JWT_SECRET",
                    problem: "must be at least \(Self.minimumSecretBytes) bytes of random text (or give a PEM key instead)")
            }
            self.keySource = .secret(secret)
        } else {
            self.keySource = .generated
        }
        if let path = environment.optional("JWT_PREVIOUS_PUBLIC_KEYS_FILE") {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(variable: "JWT_PREVIOUS_PUBLIC_KEYS_FILE", problem: "cannot be read: \(path)")
            }
            self.previousPublicKeys = try text.components(separatedBy: "-----END PUBLIC KEY-----")
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .filter { !$0.isEmpty }
                .map { pem in
                    guard let key = try? SigningKey.publicJWK(pem: pem + "\n-----END PUBLIC KEY-----\n") else {
                        throw ConfigurationError(
                            variable: "JWT_PREVIOUS_PUBLIC_KEYS_FILE",
                            problem: "holds a key that is not an Ed25519 public key in PEM")
                    }
                    return key
                }
        } else {
            self.previousPublicKeys = []
        }
        self.audience = TokenAudience(
            issuer: environment.string("JWT_ISSUER", default: "messenger-auth"),
            audience: environment.string("JWT_AUDIENCE", default: "messenger"))
        self.accessTokenLifetime = .seconds(try environment.int("JWT_ACCESS_TTL_SECONDS", default: 900, in: 30...86_400))
        self.refreshTokenLifetime = .seconds(
            try environment.int("JWT_REFRESH_TTL_SECONDS", default: 30 * 86_400, in: 60...365 * 86_400))
        self.bcryptCost = UInt8(try environment.int("BCRYPT_COST", default: 12, in: 4...16))
        self.throttle = LoginThrottle.Limits(
            perLogin: try environment.int("LOGIN_MAX_FAILURES", default: 5, in: 1...1000),
            perAddress: try environment.int("LOGIN_MAX_FAILURES_PER_ADDRESS", default: 20, in: 1...100_000),
            checksPerLogin: try environment.int("LOGIN_MAX_CHECKS", default: 30, in: 0...100_000),
            checksPerAddress: try environment.int("LOGIN_MAX_CHECKS_PER_ADDRESS", default: 300, in: 0...1_000_000),
            window: .seconds(try environment.int("LOGIN_WINDOW_SECONDS", default: 300, in: 1...86_400)))
        self.registrations = RegistrationThrottle.Limits(
            perAddress: try environment.int("REGISTRATIONS_PER_ADDRESS", default: 20, in: 0...1_000_000),
            window: .seconds(try environment.int("REGISTRATION_WINDOW_SECONDS", default: 3600, in: 1...86_400)))
        self.pruneInterval = .seconds(try environment.int("AUTH_PRUNE_INTERVAL_SECONDS", default: 3600, in: 1...86_400))
        self.maximumDisplayNameLength = try environment.int(
            "DISPLAY_NAME_MAX_LENGTH", default: Validation.defaultMaximumDisplayNameLength, in: 1...256)
    }

    /// The key in `pem`: a bad key stops the service at start with one line naming `variable` (it
    /// was found only after the migrations, retried for a minute, and reported as an RSA or ASN.1
    /// error).
    private static func privateKey(_ pem: String, variable: String) throws -> SigningKey {
        guard let key = try? SigningKey(pem: pem) else {
            throw ConfigurationError(variable: variable, problem: "is not an Ed25519 private key in PEM (PKCS#8)")
        }
        return key
    }
}
