import MessengerPostgres
import Synchronization
import Testing

/// ``Database/lookingUpLostCommit(for:_:)``: how long a look for a write whose `COMMIT` went
/// unanswered goes on.
@Suite("Looks for a lost commit")
struct LostCommitLookupTests {
    /// A look's first connection may have been lost with the commit's, and its statement then
    /// waits for the watchdog, longer than the limit on a busy machine: until the sixty-second
    /// session the look ended there, and a committed write was answered `unavailable`.
    @Test("a look is tried again after a first try that failed as unavailable past the whole limit")
    func secondTryAfterASlowFirst() async throws {
        let tries = Atomic<Int>(0)
        let found = try await Database.lookingUpLostCommit(for: .milliseconds(100)) {
            if tries.add(1, ordering: .relaxed).newValue == 1 {
                try await Task.sleep(for: .milliseconds(200))
                throw DatabaseError(.connectionLost, "the connection closed and the statement was never answered")
            }
            return 42
        }
        #expect(found == 42)
        #expect(tries.load(ordering: .relaxed) == 2)
    }

    @Test("a look that keeps failing as unavailable ends after the limit; any other failure at once")
    func endsAfterTheLimit() async throws {
        let tries = Atomic<Int>(0)
        await #expect(throws: DatabaseError.self) {
            try await Database.lookingUpLostCommit(for: .milliseconds(300)) { () async throws -> Int in
                tries.add(1, ordering: .relaxed)
                throw DatabaseError(.connectionLost, "lost")
            }
        }
        #expect(tries.load(ordering: .relaxed) >= 2)
        let once = Atomic<Int>(0)
        await #expect(throws: DatabaseError.self) {
            try await Database.lookingUpLostCommit(for: .seconds(10)) { () async throws -> Int in
                once.add(1, ordering: .relaxed)
                throw DatabaseError(.migrationFailed, "not a passing failure")
            }
        }
        #expect(once.load(ordering: .relaxed) == 1)
    }
}
