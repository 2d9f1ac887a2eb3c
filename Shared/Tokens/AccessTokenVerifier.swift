import Crypto
import Foundation
import JWTKit
import MessengerContracts
import Synchronization

/// Verifies access tokens locally against a cached JWKS, with no call per request.
///
/// Only `EdDSA` tokens whose `kid` is in the key set pass; `alg: none`, HS*, RS* and any other
/// algorithm are refused before a key is even looked up, so a public key can never be used as an
/// HMAC secret. Then the signature, expiry (no leeway), issuer and audience are checked.
///
/// A token that passed is remembered (``VerifiedTokens``) until it expires or the keys change,
/// so the same token presented again skips the signature check: about 140 µs of CPU each with
/// jwt-kit (`make bench-auth`), on every authenticated REST call and every socket CONNECT.
public final class AccessTokenVerifier: Sendable {
    private struct State {
        var collection = JWTKeyCollection()
        var kids: Set<String> = []
        var set = JSONWebKeySet(keys: [])
        var verified: VerifiedTokens
        /// Counts key changes: a check that began under other keys does not fill `verified`.
        var generation = 0
    }

    private let expected: TokenAudience
    private let state: Mutex<State>

    /// `cacheCapacity`: how many verified tokens each of ``VerifiedTokens``' two generations
    /// holds (0: none, every token is checked in full). At about 100 bytes a token, the default
    /// is at most 7 MB.
    public init(expected: TokenAudience, cacheCapacity: Int = 32_768) {
        self.expected = expected
        self.state = Mutex(State(verified: VerifiedTokens(capacity: cacheCapacity)))
    }

    /// The public keys in use, as served at `/.well-known/jwks.json`.
    public var keySet: JSONWebKeySet { self.state.withLock { $0.set } }

    /// Whether any key is loaded yet.
    public var hasKeys: Bool { self.state.withLock { !$0.kids.isEmpty } }

    /// How many verified tokens are remembered.
    public var rememberedTokens: Int { self.state.withLock { $0.verified.count } }

    /// Replaces the verification keys, and forgets the tokens the old ones accepted. The same
    /// set again changes nothing, and so does a set `superseded` says is older than the keys in
    /// use: it is asked under the lock that stores the set, after the keys are prepared (an
    /// `await`), so that nothing can be stored between its answer and the store. Returns
    /// whether the keys changed.
    @discardableResult
    public func update(_ set: JSONWebKeySet, unless superseded: () -> Bool = { false }) async throws -> Bool {
        guard self.state.withLock({ $0.set != set }) else { return false }
        let collection = JWTKeyCollection()
        var kids = Set<String>()
        for key in set.keys where key.kty == "OKP" && key.crv == "Ed25519" && key.alg == "EdDSA" {
            await collection.add(eddsa: try EdDSA.PublicKey(x: key.x, curve: .ed25519), kid: JWKIdentifier(string: key.kid))
            kids.insert(key.kid)
        }
        return self.state.withLock { state in
            guard !superseded() else { return false }
            state.collection = collection
            state.kids = kids
            state.set = set
            state.verified.removeAll()
            state.generation += 1
            return true
        }
    }

    /// Why a token was refused.
    public enum Rejection: Error, Equatable, Sendable {
        case malformed
        case algorithm
        case unknownKey(String)
        case invalid
    }

    /// A byte of the base64url alphabet (letters, digits, `-`, `_`).
    private static func isBase64URL(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }

    /// Who a valid token speaks for.
    public func verify(_ token: String) async throws(Rejection) -> VerifiedAccessToken {
        let digest = SHA256.hash(data: Data(token.utf8))
        let now = Date()
        let (remembered, collection, kids, generation) = self.state.withLock { state in
            (state.verified.lookup(digest, now: now), state.collection, state.kids, state.generation)
        }
        if let remembered { return remembered }

        // A compact JWS is three base64url parts without padding (RFC 7515, section 2): a token
        // with anything else (a `=` the signature check would ignore) is not one.
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ $0.utf8.allSatisfy(Self.isBase64URL) }),
            let headerData = Base64URL.decode(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: headerData)
        else { throw .malformed }
        guard header.alg == "EdDSA" else { throw .algorithm }
        guard let kid = header.kid else { throw .unknownKey("") }
        guard kids.contains(kid) else { throw .unknownKey(kid) }
        let claims: AccessClaims
        do {
            claims = try await collection.verify(token, as: AccessClaims.self)
        } catch {
            throw .invalid
        }
        guard claims.iss.value == self.expected.issuer, claims.aud.value.contains(self.expected.audience),
            let userID = UUID(text: claims.sub.value)
        else { throw .invalid }
        // A `sid` that is present must be a session id: a token naming none cannot be revoked.
        let session: UUID?
        if let sid = claims.sid {
            guard let id = UUID(text: sid) else { throw .invalid }
            session = id
        } else {
            session = nil
        }
        let verified = VerifiedAccessToken(userID: userID, session: session)
        self.state.withLock { state in
            guard state.generation == generation else { return }
            state.verified.insert(digest, token: verified, expiresAt: claims.exp.value)
        }
        return verified
    }

    private struct Header: Decodable {
        var alg: String
        var kid: String?
    }
}

/// What a valid access token says: the user, and the login session it was issued in.
public struct VerifiedAccessToken: Sendable, Equatable {
    public var userID: UUID
    /// The refresh token family (`sid`); nil for a token signed without one.
    public var session: UUID?

    public init(userID: UUID, session: UUID?) {
        self.userID = userID
        self.session = session
    }
}

/// Base64url without padding (RFC 7515).
public enum Base64URL {
    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: some StringProtocol) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}
