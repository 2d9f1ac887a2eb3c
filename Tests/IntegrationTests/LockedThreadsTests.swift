import Foundation
import Testing

@testable import MessagingService

/// ``LockedThreads``: the threads whose batches skip locked rows instead of waiting for them.
@Suite("Locked threads")
struct LockedThreadsTests {
    @Test("a thread found locked is kept until a batch locks it, or until its memory runs out")
    func keptUntilFreeOrForgotten() {
        let threads = LockedThreads(memory: .seconds(60))
        let (held, other) = (UUID(), UUID())
        let start = ContinuousClock.now
        #expect(!threads.containsAny(of: [held, other], now: start))
        threads.found(locked: [held], now: start)
        #expect(threads.containsAny(of: [other, held], now: start + .seconds(59)))
        #expect(!threads.containsAny(of: [other], now: start))
        #expect(!threads.containsAny(of: [held], now: start + .seconds(60)))
        threads.found(free: [held])
        #expect(!threads.containsAny(of: [held], now: start))
        #expect(threads.count == 0)
    }

    /// Until the forty-sixth session every skip recorded the time again, and a thread that two
    /// replicas kept busy could stay remembered, its messages refused, for as long as they did.
    @Test("a thread found locked again is remembered from the first time, not the last")
    func rememberedFromTheFirstTime() {
        let threads = LockedThreads(memory: .seconds(60))
        let held = UUID()
        let start = ContinuousClock.now
        threads.found(locked: [held], now: start)
        threads.found(locked: [held], now: start + .seconds(50))
        #expect(!threads.containsAny(of: [held], now: start + .seconds(60)))
        // Once forgotten, found again: remembered from then.
        threads.found(locked: [held], now: start + .seconds(70))
        #expect(threads.containsAny(of: [held], now: start + .seconds(129)))
    }

    @Test("past its capacity, the entries whose memory ran out go first, then the oldest")
    func bounded() {
        let threads = LockedThreads(memory: .seconds(60), capacity: 3)
        let start = ContinuousClock.now
        let ids = (0..<5).map { _ in UUID() }
        threads.found(locked: [ids[0]], now: start)
        threads.found(locked: [ids[1], ids[2]], now: start + .seconds(30))
        // ids[0]'s memory ran out: it goes, and the three others stay.
        threads.found(locked: [ids[3]], now: start + .seconds(61))
        #expect(threads.count == 3)
        #expect(!threads.containsAny(of: [ids[0]], now: start + .seconds(61)))
        // None ran out: the oldest (ids[1] or ids[2]) goes.
        threads.found(locked: [ids[4]], now: start + .seconds(62))
        #expect(threads.count == 3)
        #expect(threads.containsAny(of: [ids[3]], now: start + .seconds(62)))
        #expect(threads.containsAny(of: [ids[4]], now: start + .seconds(62)))
    }
}
