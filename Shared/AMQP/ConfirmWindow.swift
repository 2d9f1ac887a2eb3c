import DequeModule

/// The bookkeeping of publisher confirms, free of I/O so it can be tested alone.
///
/// Messages wait in `waiting` until the window has room, then get the channel's next delivery
/// tag and sit in `inFlight` until a `basic.ack` / `basic.nack` (possibly `multiple`) settles
/// them. When the connection is lost, every message in flight goes back to the front of the
/// queue, in order, to be published again on the next connection (at-least-once: consumers
/// deduplicate by message id); delivery tags start over at 1.
///
/// A broker that closes the channel for one message (no such exchange, a permission, a size
/// over its own limit) does not say which: the messages in flight then become suspects, and
/// are published again one at a time. The one whose channel is closed again while it is alone
/// in flight is the culprit, handed back to fail, and the rest go on (``refusedByBroker()``).
/// Until the forty-eighth session such a message was published again after every reconnect,
/// for ever, and held every publish behind it.
struct ConfirmWindow<Pending> {
    struct Entry {
        var tag: UInt64
        var pending: Pending
        var returned: Bool = false
    }

    let limit: Int
    private(set) var waiting: Deque<Pending> = []
    private(set) var inFlight: Deque<Entry> = []
    private var nextTag: UInt64 = 1
    /// How many messages, from the front of the queue (and the one in flight), go one at a
    /// time: those in flight when the broker last closed the channel.
    private(set) var suspects = 0

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    var isIdle: Bool { self.waiting.isEmpty && self.inFlight.isEmpty }
    var hasRoom: Bool { self.suspects > 0 ? self.inFlight.isEmpty : self.inFlight.count < self.limit }

    mutating func enqueue(_ pending: Pending) {
        self.waiting.append(pending)
    }

    /// The next message to publish and its delivery tag, when the window has room.
    mutating func next() -> (tag: UInt64, pending: Pending)? {
        self.next(dropping: { _ in false }, dropped: { _ in })
    }

    /// The next message to publish and its delivery tag, when the window has room. Waiting
    /// messages that `isStale` says are no longer worth sending are taken out on the way (they
    /// get no tag) and handed to `dropped`.
    mutating func next(dropping isStale: (Pending) -> Bool, dropped: (Pending) -> Void) -> (tag: UInt64, pending: Pending)? {
        guard self.hasRoom else { return nil }
        while let pending = self.waiting.popFirst() {
            if isStale(pending) {
                if self.suspects > 0 { self.suspects -= 1 }
                dropped(pending)
                continue
            }
            let tag = self.nextTag
            self.nextTag += 1
            self.inFlight.append(Entry(tag: tag, pending: pending))
            return (tag, pending)
        }
        return nil
    }

    /// Takes the waiting messages `isStale` says are no longer worth sending out of the queue,
    /// wherever they wait, and hands them to `dropped`; the others keep their order.
    mutating func dropWaiting(where isStale: (Pending) -> Bool, dropped: (Pending) -> Void) {
        guard self.waiting.contains(where: isStale) else { return }
        var kept: Deque<Pending> = []
        var suspects = self.suspects - (self.inFlight.isEmpty ? 0 : min(self.suspects, 1))
        for pending in self.waiting {
            let suspect = suspects > 0
            if suspect { suspects -= 1 }
            if isStale(pending) {
                if suspect { self.suspects -= 1 }
                dropped(pending)
            } else {
                kept.append(pending)
            }
        }
        self.waiting = kept
    }

    /// Marks the oldest unreturned in-flight message matching `predicate` as returned by the
    /// broker (`basic.return` precedes the message's `basic.ack`).
    mutating func markReturned(where predicate: (Pending) -> Bool) {
        if let index = self.inFlight.firstIndex(where: { !$0.returned && predicate($0.pending) }) {
            self.inFlight[index].returned = true
        }
    }

    /// Removes and returns the messages a confirm settles: `tag` alone, or every tag up to it
    /// when `multiple`.
    mutating func settle(tag: UInt64, multiple: Bool) -> [Entry] {
        var settled: [Entry] = []
        if multiple {
            while let first = self.inFlight.first, first.tag <= tag {
                settled.append(self.inFlight.removeFirst())
            }
        } else if let index = self.inFlight.firstIndex(where: { $0.tag == tag }) {
            settled = [self.inFlight.remove(at: index)]
        }
        self.suspects = max(0, self.suspects - settled.count)
        return settled
    }

    /// The broker closed the channel for one of the messages in flight. While suspects go one
    /// at a time, that is the one in flight: it is taken out and returned, to be failed. Any
    /// other time, every message in flight becomes a suspect. Either way the rest go back to
    /// the front of the queue, as when the connection is lost.
    mutating func refusedByBroker() -> Pending? {
        if self.suspects > 0, self.inFlight.count == 1 {
            self.suspects -= 1
            let culprit = self.inFlight.removeFirst().pending
            self.connectionLost()
            return culprit
        }
        self.suspects = max(self.suspects, self.inFlight.count)
        self.connectionLost()
        return nil
    }

    /// The connection is gone: in-flight messages go back to the front of the queue.
    mutating func connectionLost() {
        for entry in self.inFlight.reversed() {
            self.waiting.prepend(entry.pending)
        }
        self.inFlight.removeAll()
        self.nextTag = 1
    }

    /// Takes everything, for failing it at shutdown.
    mutating func removeAll() -> [Pending] {
        let all = self.inFlight.map(\.pending) + Array(self.waiting)
        self.inFlight.removeAll()
        self.waiting.removeAll()
        self.suspects = 0
        return all
    }
}
