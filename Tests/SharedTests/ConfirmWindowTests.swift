import Foundation
import Testing

@testable import MessengerAMQP

@Suite("Publisher confirm window")
struct ConfirmWindowTests {
    @Test("hands out tags in order and never more than the window")
    func windowLimit() {
        var window = ConfirmWindow<String>(limit: 2)
        for name in ["a", "b", "c"] { window.enqueue(name) }
        #expect(window.next()?.tag == 1)
        #expect(window.next()?.tag == 2)
        #expect(window.next() == nil)
        #expect(window.waiting.count == 1)
        _ = window.settle(tag: 1, multiple: false)
        let third = window.next()
        #expect(third?.tag == 3)
        #expect(third?.pending == "c")
    }

    @Test("stale messages are taken out wherever they wait (a blocked connection, an outage); the rest keep their order")
    func staleDroppedInPlace() {
        var window = ConfirmWindow<String>(limit: 1)
        for name in ["event-1", "rpc-a", "event-2", "rpc-b"] { window.enqueue(name) }
        var dropped: [String] = []
        window.dropWaiting(where: { $0.hasPrefix("rpc") }, dropped: { dropped.append($0) })
        #expect(dropped == ["rpc-a", "rpc-b"])
        #expect(Array(window.waiting) == ["event-1", "event-2"])
        #expect(window.next()?.tag == 1)
    }

    @Test("messages gone stale while waiting (a reconnect) are dropped without a tag, and handed back")
    func staleDropped() {
        var window = ConfirmWindow<String>(limit: 10)
        for name in ["rpc-old", "event", "rpc-late"] { window.enqueue(name) }
        while window.next() != nil {}
        window.connectionLost()
        var dropped: [String] = []
        var published: [(UInt64, String)] = []
        while let (tag, pending) = window.next(dropping: { $0.hasPrefix("rpc") }, dropped: { dropped.append($0) }) {
            published.append((tag, pending))
        }
        #expect(dropped == ["rpc-old", "rpc-late"])
        #expect(published.map(\.0) == [1])
        #expect(published.map(\.1) == ["event"])
        #expect(window.settle(tag: 1, multiple: false).map(\.pending) == ["event"])
        #expect(window.isIdle)
    }

    /// A request that may travel in a batch, with `deadline`.
    static func request(_ deadline: ContinuousClock.Instant?) -> PendingPublish {
        PendingPublish(
            message: AMQPMessage(exchange: "x", routingKey: "k", body: Data([1])).batched(as: "t"), promise: nil,
            deadline: deadline)
    }

    @Test("a batch is worth sending while any of its requests' callers still waits")
    func batchDeadline() {
        let now = ContinuousClock.now
        let early = now + .seconds(1)
        let late = now + .milliseconds(1900)
        let merged = MessageBatch.coalesce([Self.request(early), Self.request(late)])
        #expect(merged.count == 1)
        #expect(merged[0].deadline == late)
        #expect(merged[0].isStale(at: now + .milliseconds(1500)) == false)
        #expect(merged[0].isStale(at: now + .milliseconds(1900)))
        #expect(MessageBatch.coalesce([Self.request(nil), Self.request(nil)]).count == 1)
    }

    /// A batch is sent with its latest deadline as its `expiration`: until the fifty-third
    /// session a request with 50 ms left, merged with one queued 4.9 s later, had its handler
    /// run with 5 s more than its caller waited (a review).
    @Test("requests whose deadlines are more than a second apart, or one with none, travel apart")
    func batchDeadlineSpread() {
        let now = ContinuousClock.now
        let apart = MessageBatch.coalesce([
            Self.request(now + .milliseconds(50)), Self.request(now + .milliseconds(4950)),
            Self.request(now + .milliseconds(5000)),
        ])
        #expect(apart.map(\.deadline) == [now + .milliseconds(50), now + .milliseconds(5000)])
        #expect(MessageBatch.coalesce([Self.request(now), Self.request(nil)]).count == 2)
        #expect(MessageBatch.coalesce([Self.request(now), Self.request(now + .milliseconds(1001))]).count == 2)
        // Within a second of the first, but not of each other: the third travels apart.
        let spread = MessageBatch.coalesce([Self.request(now), Self.request(now + .seconds(1)), Self.request(now - .seconds(1))])
        #expect(spread.map(\.deadline) == [now + .seconds(1), now - .seconds(1)])
    }

    @Test("a multiple ack settles every tag up to it, a single ack only its own")
    func multipleAck() {
        var window = ConfirmWindow<Int>(limit: 10)
        for value in 1...5 { window.enqueue(value) }
        while window.next() != nil {}
        #expect(window.settle(tag: 2, multiple: false).map(\.pending) == [2])
        #expect(window.settle(tag: 4, multiple: true).map(\.pending) == [1, 3, 4])
        #expect(window.settle(tag: 4, multiple: true).isEmpty)
        #expect(window.settle(tag: 5, multiple: false).map(\.pending) == [5])
        #expect(window.isIdle)
    }

    @Test("a returned message is marked, and only the first unreturned match")
    func returned() {
        var window = ConfirmWindow<String>(limit: 10)
        for name in ["x", "x", "y"] { window.enqueue(name) }
        while window.next() != nil {}
        window.markReturned { $0 == "x" }
        let settled = window.settle(tag: 3, multiple: true)
        #expect(settled.map(\.returned) == [true, false, false])
    }

    @Test("a lost connection puts in-flight messages back first, in order, and restarts tags at 1")
    func connectionLost() {
        var window = ConfirmWindow<Int>(limit: 2)
        for value in 1...4 { window.enqueue(value) }
        _ = window.next()
        _ = window.next()
        _ = window.settle(tag: 1, multiple: false)
        window.connectionLost()
        #expect(window.inFlight.isEmpty)
        #expect(Array(window.waiting) == [2, 3, 4])
        let first = window.next()
        #expect(first?.tag == 1)
        #expect(first?.pending == 2)
    }

    @Test("removeAll returns in-flight then waiting messages")
    func removeAll() {
        var window = ConfirmWindow<Int>(limit: 1)
        for value in 1...3 { window.enqueue(value) }
        _ = window.next()
        #expect(window.removeAll() == [1, 2, 3])
        #expect(window.isIdle)
    }

    @Test("a message the broker closes the channel for is found by sending the suspects one at a time, and only it fails")
    func refusedMessageIsolated() {
        var window = ConfirmWindow<String>(limit: 10)
        for name in ["a", "poison", "b", "c"] { window.enqueue(name) }
        while window.next() != nil {}
        _ = window.settle(tag: 1, multiple: false)  // "a" was confirmed before the close
        // The close names no message: the three in flight become suspects; "d" came after.
        #expect(window.refusedByBroker() == nil)
        window.enqueue("d")
        #expect(window.suspects == 3)
        #expect(Array(window.waiting) == ["poison", "b", "c", "d"])
        // One at a time: nothing else goes out before the first suspect is settled or refused.
        #expect(window.next()?.pending == "poison")
        #expect(window.next() == nil)
        #expect(window.refusedByBroker() == "poison")
        #expect(window.suspects == 2)
        #expect(window.next()?.pending == "b")
        #expect(window.next() == nil)
        #expect(window.settle(tag: 1, multiple: false).map(\.pending) == ["b"])
        #expect(window.next()?.pending == "c")
        #expect(window.next() == nil)
        _ = window.settle(tag: 2, multiple: false)
        // The suspects are cleared: the window is whole again.
        #expect(window.suspects == 0)
        #expect(window.next()?.pending == "d")
    }

    @Test("suspects dropped as stale, or put back by a lost connection, are counted right")
    func suspectsDroppedOrLost() {
        var window = ConfirmWindow<String>(limit: 10)
        for name in ["rpc-a", "event", "rpc-b"] { window.enqueue(name) }
        while window.next() != nil {}
        _ = window.refusedByBroker()
        window.enqueue("rpc-later")
        #expect(window.suspects == 3)
        // A connection lost with a suspect in flight: it is still a suspect, first in line.
        #expect(window.next()?.pending == "rpc-a")
        window.connectionLost()
        #expect(window.suspects == 3)
        var dropped: [String] = []
        window.dropWaiting(where: { $0.hasPrefix("rpc") }, dropped: { dropped.append($0) })
        #expect(dropped == ["rpc-a", "rpc-b", "rpc-later"])
        #expect(window.suspects == 1)
        #expect(window.next()?.pending == "event")
        #expect(window.next() == nil)
        _ = window.settle(tag: 1, multiple: false)
        #expect(window.suspects == 0)
        #expect(window.isIdle)
    }
}
