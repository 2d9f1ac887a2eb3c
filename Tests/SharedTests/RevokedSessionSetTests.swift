import Foundation
import MessengerContracts
import MessengerTokens
import Testing

@Suite("Revoked login sessions")
struct RevokedSessionSetTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func revoked(_ sessions: [UUID], until seconds: TimeInterval) -> RevokedSessions {
        RevokedSessions(userId: EntityID(UUID()), sessionIds: sessions.map(EntityID.init), until: self.now + seconds)
    }

    @Test("a session is held until its last token expires; an insert says which sessions are new")
    func heldUntilExpiry() {
        let set = RevokedSessionSet()
        let (a, b) = (UUID(), UUID())
        #expect(Set(set.insert(self.revoked([a, b], until: 60), now: self.now)) == [a, b])
        #expect(set.insert(self.revoked([a], until: 60), now: self.now).isEmpty)
        #expect(set.contains(a, now: self.now + 59))
        #expect(!set.contains(a, now: self.now + 60))
        #expect(!set.contains(UUID(), now: self.now))
        // A later `until` for a held session extends it without counting it as new.
        #expect(set.insert(self.revoked([a], until: 120), now: self.now).isEmpty)
        #expect(set.contains(a, now: self.now + 100))
    }

    @Test("an announcement whose tokens have all expired adds nothing")
    func expiredAnnouncement() {
        let set = RevokedSessionSet()
        #expect(set.insert(self.revoked([UUID()], until: -1), now: self.now).isEmpty)
        #expect(set.count == 0)
    }

    @Test("sessions whose tokens expired are dropped as the set grows")
    func pruned() {
        let set = RevokedSessionSet()
        for _ in 0..<1_000 { set.insert(self.revoked([UUID()], until: 10), now: self.now) }
        let lasting = UUID()
        set.insert(self.revoked([lasting], until: 3_600), now: self.now)
        for _ in 0..<100 { set.insert(self.revoked([UUID()], until: 3_600), now: self.now + 20) }
        #expect(set.count < 1_000)
        #expect(set.contains(lasting, now: self.now + 20))
    }
}
