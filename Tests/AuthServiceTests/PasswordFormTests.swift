import HummingbirdBcrypt
import Testing

@testable import AuthService

/// Passwords are hashed in NFC, and hashes written before are verified in the form they were
/// made in (``PasswordHasher``).
@Suite("Password forms")
struct PasswordFormTests {
    static let cost: UInt8 = 4
    /// `café-secret` with `é` as one code point (NFC) and as `e` and a combining accent (NFD).
    static let composed = "caf\u{E9}-secret"
    static let decomposed = "cafe\u{301}-secret"

    @Test("a password typed in NFC or in NFD is one password")
    func eitherForm() async throws {
        let hasher = try await PasswordHasher(cost: Self.cost)
        let fromNFD = try await hasher.hash(Self.decomposed, before: nil)
        #expect(fromNFD.hasPrefix(PasswordHasher.prefix))
        #expect(try await hasher.verify(Self.composed, against: fromNFD, before: nil))
        #expect(try await hasher.verify(Self.decomposed, against: fromNFD, before: nil))
        let fromNFC = try await hasher.hash(Self.composed, before: nil)
        #expect(try await hasher.verify(Self.decomposed, against: fromNFC, before: nil))
        #expect(try await !hasher.verify("cafe-secret", against: fromNFC, before: nil))
    }

    @Test("a hash written before verifies the password as it was typed then, and nothing else")
    func earlierHashes() async throws {
        let hasher = try await PasswordHasher(cost: Self.cost)
        let unnormalized =
            PasswordHasher.unnormalizedPrefix + Bcrypt.hash(PasswordHasher.prehash(Self.decomposed), cost: Self.cost)
        #expect(try await hasher.verify(Self.decomposed, against: unnormalized, before: nil))
        #expect(try await !hasher.verify(Self.composed, against: unnormalized, before: nil))
        let plain = Bcrypt.hash(Self.composed, cost: Self.cost)
        #expect(try await hasher.verify(Self.composed, against: plain, before: nil))
        #expect(try await !hasher.verify(Self.decomposed, against: plain, before: nil))
    }

    @Test("a hash of an older form or another cost is to be made again at the next login")
    func rehash() async throws {
        let hasher = try await PasswordHasher(cost: Self.cost)
        let current = try await hasher.hash(Self.composed, before: nil)
        #expect(!hasher.needsRehash(current, password: Self.composed))
        let costlier = try await PasswordHasher(cost: Self.cost + 1)
        #expect(costlier.needsRehash(current, password: Self.composed))
        #expect(
            hasher.needsRehash(PasswordHasher.unnormalizedPrefix + Bcrypt.hash("x", cost: Self.cost), password: "x"))
        #expect(hasher.needsRehash(Bcrypt.hash("x", cost: Self.cost), password: "x"))
        #expect(hasher.needsRehash(PasswordHasher.prefix + "garbage", password: "x"))
    }

    @Test("a plain bcrypt hash is not made again from a password it only partly read")
    func plainBcryptReadsSeventyTwoBytes() async throws {
        let hasher = try await PasswordHasher(cost: Self.cost)
        let original = String(repeating: "a", count: 72) + "-the-rest"
        let typo = String(repeating: "a", count: 72) + "-a-typo"
        let plain = Bcrypt.hash(original, cost: Self.cost)
        // bcrypt reads 72 bytes: the typo verifies, and must not become the password.
        #expect(try await hasher.verify(typo, against: plain, before: nil))
        #expect(!hasher.needsRehash(plain, password: typo))
        #expect(!hasher.needsRehash(plain, password: original))
        #expect(!hasher.needsRehash(plain, password: "short\u{0}password"))
        // 72 bytes exactly are the start of a longer password too; 71 are all bcrypt read.
        #expect(!hasher.needsRehash(plain, password: String(repeating: "a", count: 72)))
        #expect(hasher.needsRehash(plain, password: String(repeating: "a", count: 71)))
        // The prehashed forms read the whole password.
        let prehashed = try await hasher.hash(original, before: nil)
        #expect(try await !hasher.verify(typo, against: prehashed, before: nil))
    }
}
