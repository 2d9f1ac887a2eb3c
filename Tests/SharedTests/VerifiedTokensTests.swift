import Crypto
import Foundation
import Testing

@testable import MessengerTokens

@Suite("Verified tokens remembered")
struct VerifiedTokensTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func digest(_ token: String) -> SHA256Digest { SHA256.hash(data: Data(token.utf8)) }

    func verified() -> VerifiedAccessToken { VerifiedAccessToken(userID: UUID(), session: UUID()) }

    @Test("a token serves until its exp, by jwt-kit's rule (now < exp), and another token never matches it")
    func expiry() {
        var tokens = VerifiedTokens(capacity: 4)
        let token = self.verified()
        let expiresAt = self.start.addingTimeInterval(900)
        tokens.insert(self.digest("a.b.c"), token: token, expiresAt: expiresAt)
        #expect(tokens.lookup(self.digest("a.b.c"), now: self.start) == token)
        #expect(tokens.lookup(self.digest("a.b.d"), now: self.start) == nil)
        #expect(tokens.lookup(self.digest("a.b.c"), now: expiresAt.addingTimeInterval(-0.001)) == token)
        #expect(tokens.lookup(self.digest("a.b.c"), now: expiresAt) == nil)
        #expect(tokens.count == 0)  // an expired token is dropped when met
    }

    @Test("two generations: at most twice the capacity, and a token in use moves to the newer one")
    func generations() {
        var tokens = VerifiedTokens(capacity: 3)
        let later = self.start.addingTimeInterval(900)
        let all = (0..<7).map { ("token \($0)", self.verified()) }
        for (text, token) in all.prefix(3) { tokens.insert(self.digest(text), token: token, expiresAt: later) }
        #expect(tokens.count == 3)
        // The fourth starts a new generation; the first three are the older one.
        tokens.insert(self.digest(all[3].0), token: all[3].1, expiresAt: later)
        #expect(tokens.count == 4)
        // Token 0 is used: it moves to the newer generation (now tokens 3 and 0).
        #expect(tokens.lookup(self.digest(all[0].0), now: self.start) == all[0].1)
        #expect(tokens.count == 4)
        // Token 4 fills the newer generation; token 5 drops the older one (tokens 1 and 2).
        tokens.insert(self.digest(all[4].0), token: all[4].1, expiresAt: later)
        tokens.insert(self.digest(all[5].0), token: all[5].1, expiresAt: later)
        #expect(tokens.count == 4)
        for index in [1, 2] { #expect(tokens.lookup(self.digest(all[index].0), now: self.start) == nil) }
        for index in [0, 3, 4, 5] { #expect(tokens.lookup(self.digest(all[index].0), now: self.start) == all[index].1) }
        for (text, token) in all { tokens.insert(self.digest(text), token: token, expiresAt: later) }
        #expect(tokens.count <= 6)
    }

    @Test("a capacity of 0 keeps nothing, and removeAll forgets everything")
    func emptyAndCleared() {
        var none = VerifiedTokens(capacity: 0)
        none.insert(self.digest("x"), token: self.verified(), expiresAt: self.start.addingTimeInterval(900))
        #expect(none.count == 0)
        #expect(none.lookup(self.digest("x"), now: self.start) == nil)

        var tokens = VerifiedTokens(capacity: 2)
        for text in ["x", "y", "z"] {
            tokens.insert(self.digest(text), token: self.verified(), expiresAt: self.start.addingTimeInterval(900))
        }
        tokens.removeAll()
        #expect(tokens.count == 0)
        #expect(tokens.lookup(self.digest("z"), now: self.start) == nil)
    }
}
