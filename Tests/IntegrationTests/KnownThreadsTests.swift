import Foundation
import Testing

@testable import MessagingService

/// ``KnownThreads``: the replica's hints for the lock-free message path, bounded in threads and
/// in members.
@Suite("Known threads")
struct KnownThreadsTests {
    private func thread(members: Int, seq: Int64 = 1) -> KnownThreads.Thread {
        KnownThreads.Thread(members: (0..<members).map { _ in UUID() }, lastSeq: seq, lastActivity: Date())
    }

    @Test("the members of the threads kept stay within the member capacity; older threads are dropped for new ones")
    func memberCapacity() {
        let known = KnownThreads(capacity: 100, memberCapacity: 1_000)
        for _ in 0..<10 { known.wrote([UUID(): self.thread(members: 256)]) }
        #expect(known.counts.members <= 1_000)
        #expect(known.counts.threads == 3)
        // A thread larger than the whole capacity is not kept (its batches take the locks).
        known.wrote([UUID(): self.thread(members: 1_001)])
        #expect(known.counts.threads == 3)
    }

    @Test("a later seq replaces a thread without counting its members twice; forgetting gives them back")
    func replaceAndForget() {
        let known = KnownThreads(capacity: 100, memberCapacity: 1_000)
        let id = UUID()
        var first = self.thread(members: 10)
        known.wrote([id: first])
        first.lastSeq = 2
        known.wrote([id: first])
        #expect(known.counts == (1, 10))
        #expect(known.lookup([id])?[id]?.lastSeq == 2)
        known.forget([id])
        #expect(known.counts == (0, 0))
        #expect(known.lookup([id]) == nil)
    }

    @Test("no more threads than the capacity are kept")
    func threadCapacity() {
        let known = KnownThreads(capacity: 5, memberCapacity: 1_000)
        for _ in 0..<20 { known.wrote([UUID(): self.thread(members: 2)]) }
        #expect(known.counts == (5, 10))
    }
}
