import Crypto
import Foundation
import JWTKit
import MessengerContracts

/// An Ed25519 key that signs access tokens, with its key id.
public struct SigningKey: Sendable {
    public let privateKey: Curve25519.Signing.PrivateKey
    /// The first 16 hex digits of SHA-256 of the raw public key.
    public let kid: String

    public init(_ privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
        self.kid = Self.kid(for: privateKey.publicKey)
    }

    /// A PKCS#8 PEM Ed25519 private key (as `openssl genpkey -algorithm ed25519` writes).
    public init(pem: String) throws {
        self.init(try Curve25519.Signing.PrivateKey(pemRepresentation: pem))
    }

    /// A key derived from a secret with HKDF-SHA256, so replicas given the same secret agree.
    public init(derivedFrom secret: String) {
        let seed = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Data(secret.utf8)), salt: Data("messenger-auth".utf8),
            info: Data("ed25519 access token signing key v1".utf8), outputByteCount: 32)
        let raw = seed.withUnsafeBytes { Data($0) }
        self.init(try! Curve25519.Signing.PrivateKey(rawRepresentation: raw))
    }

    /// The public half as a JWK.
    public var publicJWK: JSONWebKey {
        JSONWebKey(x: Base64URL.encode(self.privateKey.publicKey.rawRepresentation), kid: self.kid)
    }

    public static func kid(for publicKey: Curve25519.Signing.PublicKey) -> String {
        SHA256.hash(data: publicKey.rawRepresentation).prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// A JWK for a PEM public key kept for verification during a rotation.
    public static func publicJWK(pem: String) throws -> JSONWebKey {
        let key = try Curve25519.Signing.PublicKey(pemRepresentation: pem)
        return JSONWebKey(x: Base64URL.encode(key.rawRepresentation), kid: Self.kid(for: key))
    }
}

/// Signs access tokens with the current key.
public struct AccessTokenSigner: Sendable {
    private let keys: JWTKeyCollection
    private let key: SigningKey
    public let audience: TokenAudience
    public let lifetime: Duration

    public init(key: SigningKey, audience: TokenAudience, lifetime: Duration) async {
        self.key = key
        self.audience = audience
        self.lifetime = lifetime
        self.keys = JWTKeyCollection()
        await self.keys.add(eddsa: EdDSA.PrivateKey(backing: key.privateKey), kid: JWKIdentifier(string: key.kid))
    }

    /// A signed access token for `userID` in the login session `session` (its refresh token
    /// family).
    public func sign(userID: UUID, session: UUID?, at date: Date = Date()) async throws -> String {
        let claims = AccessClaims(
            userID: userID, session: session, issuedAt: date, lifetime: self.lifetime, issuer: self.audience.issuer,
            audience: self.audience.audience)
        return try await self.keys.sign(claims, kid: JWKIdentifier(string: self.key.kid))
    }
}
