import MessengerContracts
import Synchronization
import Testing

@testable import SocketGateway

@Suite("Upload slots")
struct UploadSlotsTests {
    let now = ContinuousClock.now

    /// Takes a slot for `user` as upload `id` at `offset` from ``now``; counts its evictions.
    func take(_ slots: UploadSlots, _ user: String, _ id: UInt64, at offset: Duration = .zero, evicted: Evictions? = nil)
        throws(ServiceError)
    {
        try slots.take(for: user, id: id, now: self.now + offset, evict: { evicted?.count(id) })
    }

    final class Evictions: Sendable {
        private let ids = Mutex<[UInt64]>([])
        var all: [UInt64] { self.ids.withLock { $0 } }
        func count(_ id: UInt64) { self.ids.withLock { $0.append(id) } }
    }

    @Test("a user holds at most their slots, the gateway at most its own, and a slot given back is free again")
    func slots() throws {
        let slots = UploadSlots(perUser: 2, inAll: 3)
        try self.take(slots, "a", 1)
        try self.take(slots, "a", 2)
        #expect(throws: ServiceError.rateLimited("at most 2 uploads at once", retryAfter: 1)) {
            try self.take(slots, "a", 3)
        }
        try self.take(slots, "b", 4)
        #expect(slots.bodyRead(id: 1) && slots.bodyRead(id: 2) && slots.bodyRead(id: 4))
        #expect(throws: ServiceError.unavailable("too many uploads at once", retryAfter: 1)) {
            try self.take(slots, "c", 5)
        }
        slots.give(back: "a", id: 1)
        try self.take(slots, "c", 6)
        #expect(throws: ServiceError.self) { try self.take(slots, "a", 7) }
        slots.give(back: "b", id: 4)
        try self.take(slots, "a", 8)
    }

    /// Until the fifty-third session a few accounts sending their bodies a byte at a time kept
    /// every other upload refused (a review).
    @Test("with every slot taken, a newcomer takes one from a user holding more, or from a slow upload, the slowest")
    func takesFromTheSlowestThatHoldsMoreOrIsSlow() throws {
        let slots = UploadSlots(perUser: 2, inAll: 4)
        let evictions = Evictions()
        try self.take(slots, "a", 1, evicted: evictions)
        try self.take(slots, "a", 2, evicted: evictions)
        try self.take(slots, "b", 3, evicted: evictions)
        try self.take(slots, "c", 4, evicted: evictions)
        slots.received(1 << 20, id: 1)
        slots.received(1 << 10, id: 2)
        // d holds nothing and a holds 2, more than d would: a's slower upload goes.
        try self.take(slots, "d", 5, at: .seconds(1), evicted: evictions)
        #expect(evictions.all == [2])
        #expect(!slots.bodyRead(id: 2))
        slots.give(back: "a", id: 2)
        // Now each holds one: nobody holds more than e would, and nobody is slow yet.
        #expect(throws: ServiceError.unavailable("too many uploads at once", retryAfter: 1)) {
            try self.take(slots, "e", 6, at: .seconds(5))
        }
        // After ten seconds under 16 KiB/s, b's and c's uploads are slow (a's and d's are
        // not); c's is the slower.
        slots.received(300_000, id: 3)
        slots.received(100_000, id: 4)
        slots.received(1 << 20, id: 5)
        try self.take(slots, "e", 7, at: .seconds(20), evicted: evictions)
        #expect(evictions.all == [2, 4])
        // An upload whose body is read keeps its slot, however slow it was.
        #expect(slots.bodyRead(id: 3))
        slots.received(1 << 20, id: 7)
        #expect(throws: ServiceError.unavailable("too many uploads at once", retryAfter: 1)) {
            try self.take(slots, "f", 8, at: .seconds(40))
        }
    }

    @Test("an upload whose slot is taken while it reads its body ends unavailable, and gives nothing back twice")
    func evictedReadEnds() async throws {
        let slots = UploadSlots(perUser: 1, inAll: 1)
        let started = Mutex(false)
        let reading = Task {
            try await slots.withSlot(for: "slow") { slot in
                try await slot.readBody { _ in
                    started.withLock { $0 = true }
                    try await Task.sleep(for: .seconds(60))
                    return 0
                }
            }
        }
        while !started.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        try slots.take(for: "fast", id: 1_000, now: .now + .seconds(11), evict: {})
        let error = await #expect(throws: ServiceError.self) { try await reading.value }
        #expect(error?.code == .unavailable)
        // The slow upload's slot went to the newcomer; giving it back did not free a second one.
        #expect(throws: ServiceError.self) { try slots.take(for: "third", id: 1_001, evict: {}) }
        slots.give(back: "fast", id: 1_000)
        try slots.take(for: "third", id: 1_002, evict: {})
    }
}
