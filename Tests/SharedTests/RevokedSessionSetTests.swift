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

    @Test("a session is kept an hour past its last token for its queued commands, and no longer")
    func keptForCommands() {
        let set = RevokedSessionSet()
        let a = UUID()
        set.insert(self.revoked([a], until: 60), now: self.now)
        #expect(!set.contains(a, now: self.now + 61))
        #expect(set.hasEnded(a, now: self.now + 61))
        #expect(set.hasEnded(a, now: self.now + 60 + RevokedSessionSet.retention - 1))
        #expect(!set.hasEnded(a, now: self.now + 60 + RevokedSessionSet.retention))
        #expect(!set.hasEnded(UUID(), now: self.now))
    }

    @Test("an announcement whose tokens have all expired is kept for commands within the retention, not past it")
    func expiredAnnouncement() {
        let set = RevokedSessionSet()
        let late = UUID()
        #expect(set.insert(self.revoked([late], until: -60), now: self.now) == [late])
        #expect(!set.contains(late, now: self.now))
        #expect(set.hasEnded(late, now: self.now))
        #expect(set.insert(self.revoked([UUID()], until: -RevokedSessionSet.retention - 1), now: self.now).isEmpty)
        #expect(set.count == 1)
    }

    @Test("sessions past their retention are dropped as the set grows")
    func pruned() {
        let set = RevokedSessionSet()
        for _ in 0..<1_000 { set.insert(self.revoked([UUID()], until: 10), now: self.now) }
        let lasting = UUID()
        set.insert(self.revoked([lasting], until: 7_200), now: self.now)
        let later = self.now + 20 + RevokedSessionSet.retention
        for _ in 0..<100 { set.insert(self.revoked([UUID()], until: 7_200), now: later) }
        #expect(set.count < 1_000)
        #expect(set.contains(lasting, now: later))
    }
}
