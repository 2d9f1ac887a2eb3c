import Crypto
import Foundation
import MessengerContracts
import MessengerTokens
import Testing

@Suite("Access tokens")
struct AccessTokenTests {
    let key = SigningKey(Curve25519.Signing.PrivateKey())
    let audience = TokenAudience(issuer: "messenger-auth", audience: "messenger")

    func verifier() async throws -> AccessTokenVerifier {
        let verifier = AccessTokenVerifier(expected: self.audience)
        try await verifier.update(JSONWebKeySet(keys: [self.key.publicJWK]))
        return verifier
    }

    func signer(audience: TokenAudience? = nil, lifetime: Duration = .seconds(900)) async -> AccessTokenSigner {
        await AccessTokenSigner(key: self.key, audience: audience ?? self.audience, lifetime: lifetime)
    }

    @Test("a token signed with the current key verifies to its user and its login session")
    func validToken() async throws {
        let user = UUID()
        let session = UUID()
        let token = try await self.signer().sign(userID: user, session: session)
        #expect(try await self.verifier().verify(token) == VerifiedAccessToken(userID: user, session: session))
        let sessionless = try await self.signer().sign(userID: user, session: nil)
        #expect(try await self.verifier().verify(sessionless) == VerifiedAccessToken(userID: user, session: nil))
    }

    @Test("alg none, HS256 with the public key, and unknown kids are refused before any key is used")
    func algorithmAttacks() async throws {
        let verifier = try await self.verifier()
        let token = try await self.signer().sign(userID: UUID(), session: UUID())
        let payload = token.split(separator: ".")[1]
        let none = Base64URL.encode(Data(#"{"alg":"none","typ":"JWT","kid":"\#(self.key.kid)"}"#.utf8)) + ".\(payload)."
        await #expect(throws: AccessTokenVerifier.Rejection.algorithm) { try await verifier.verify(none) }

        let hsHeader = Base64URL.encode(Data(#"{"alg":"HS256","typ":"JWT","kid":"\#(self.key.kid)"}"#.utf8))
        let secret = SymmetricKey(data: self.key.privateKey.publicKey.rawRepresentation)
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(hsHeader).\(payload)".utf8), using: secret)
        let hs256 = "\(hsHeader).\(payload).\(Base64URL.encode(Data(mac)))"
        await #expect(throws: AccessTokenVerifier.Rejection.algorithm) { try await verifier.verify(hs256) }

        let other = SigningKey(Curve25519.Signing.PrivateKey())
        let foreign = try await AccessTokenSigner(key: other, audience: self.audience, lifetime: .seconds(900)).sign(
            userID: UUID(), session: UUID())
        await #expect(throws: AccessTokenVerifier.Rejection.unknownKey(other.kid)) { try await verifier.verify(foreign) }
    }

    @Test("a tampered payload, a wrong audience or issuer, an expired token and garbage are refused")
    func invalidTokens() async throws {
        let verifier = try await self.verifier()
        let token = try await self.signer().sign(userID: UUID(), session: UUID())
        let parts = token.split(separator: ".").map(String.init)
        var claims = try #require(JSONSerialization.jsonObject(with: Base64URL.decode(parts[1])!) as? [String: Any])
        claims["sub"] = UUID().uuidString.lowercased()
        let tampered = "\(parts[0]).\(Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))).\(parts[2])"
        await #expect(throws: AccessTokenVerifier.Rejection.invalid) { try await verifier.verify(tampered) }

        let wrongAudience = try await self.signer(audience: TokenAudience(issuer: "messenger-auth", audience: "elsewhere"))
            .sign(userID: UUID(), session: UUID())
        await #expect(throws: AccessTokenVerifier.Rejection.invalid) { try await verifier.verify(wrongAudience) }
        let wrongIssuer = try await self.signer(audience: TokenAudience(issuer: "someone", audience: "messenger"))
            .sign(userID: UUID(), session: UUID())
        await #expect(throws: AccessTokenVerifier.Rejection.invalid) { try await verifier.verify(wrongIssuer) }

        let expired = try await self.signer(lifetime: .seconds(60)).sign(
            userID: UUID(), session: UUID(), at: Date().addingTimeInterval(-120))
        await #expect(throws: AccessTokenVerifier.Rejection.invalid) { try await verifier.verify(expired) }

        for garbage in ["", "abc", "a.b.c", "a.b", String(repeating: "x", count: 5000)] {
            await #expect(throws: AccessTokenVerifier.Rejection.self) { try await verifier.verify(garbage) }
        }
    }

    @Test("a token verified once is remembered, with the same result, until the keys change")
    func rememberedTokens() async throws {
        let verifier = try await self.verifier()
        let user = UUID()
        let session = UUID()
        let token = try await self.signer().sign(userID: user, session: session)
        let expected = VerifiedAccessToken(userID: user, session: session)
        #expect(try await verifier.verify(token) == expected)
        #expect(verifier.rememberedTokens == 1)
        #expect(try await verifier.verify(token) == expected)
        #expect(verifier.rememberedTokens == 1)

        // The remembered token's bytes with its payload changed are another token, checked in full.
        let parts = token.split(separator: ".").map(String.init)
        var claims = try #require(JSONSerialization.jsonObject(with: Base64URL.decode(parts[1])!) as? [String: Any])
        claims["sub"] = UUID().uuidString.lowercased()
        let tampered = "\(parts[0]).\(Base64URL.encode(try JSONSerialization.data(withJSONObject: claims))).\(parts[2])"
        await #expect(throws: AccessTokenVerifier.Rejection.invalid) { try await verifier.verify(tampered) }
        #expect(verifier.rememberedTokens == 1)

        // The same key set again keeps what was verified; a new one (the old key gone) forgets it.
        try await verifier.update(JSONWebKeySet(keys: [self.key.publicJWK]))
        #expect(verifier.rememberedTokens == 1)
        let next = SigningKey(Curve25519.Signing.PrivateKey())
        try await verifier.update(JSONWebKeySet(keys: [next.publicJWK]))
        #expect(verifier.rememberedTokens == 0)
        await #expect(throws: AccessTokenVerifier.Rejection.unknownKey(self.key.kid)) { try await verifier.verify(token) }

        // With no cache, every check is made in full and nothing is kept.
        let uncached = AccessTokenVerifier(expected: self.audience, cacheCapacity: 0)
        try await uncached.update(JSONWebKeySet(keys: [self.key.publicJWK]))
        #expect(try await uncached.verify(token) == expected)
        #expect(uncached.rememberedTokens == 0)
    }

    @Test("a key set superseded by the time its keys are ready is not stored; the keys in use stay")
    func supersededKeySet() async throws {
        let verifier = try await self.verifier()
        let token = try await self.signer().sign(userID: UUID(), session: nil)
        let older = SigningKey(Curve25519.Signing.PrivateKey())
        var asked = 0
        let stored = try await verifier.update(JSONWebKeySet(keys: [older.publicJWK])) {
            asked += 1
            return true
        }
        #expect(!stored && asked == 1)
        #expect(verifier.keySet == JSONWebKeySet(keys: [self.key.publicJWK]))
        #expect(try await verifier.verify(token).session == nil, "the token of the key in use still verifies")
        #expect(try await verifier.update(JSONWebKeySet(keys: [older.publicJWK])) { false })
        #expect(verifier.keySet == JSONWebKeySet(keys: [older.publicJWK]))
    }

    @Test("a key derived from JWT_SECRET is the same for every replica, and a PEM round-trips")
    func keySources() throws {
        #expect(SigningKey(derivedFrom: "s3cret").kid == SigningKey(derivedFrom: "s3cret").kid)
        #expect(SigningKey(derivedFrom: "s3cret").kid != SigningKey(derivedFrom: "other").kid)
        let pem = self.key.privateKey.pemRepresentation
        #expect(try SigningKey(pem: pem).kid == self.key.kid)
    }
}
