import DequeModule

/// The bookkeeping of publisher confirms, free of I/O so it can be tested alone.
///
/// Messages wait in `waiting` until the window has room, then get the channel's next delivery
/// tag and sit in `inFlight` until a `basic.ack` / `basic.nack` (possibly `multiple`) settles
/// them. When the connection is lost, every message in flight goes back to the front of the
/// queue, in order, to be published again on the next connection (at-least-once: consumers
/// deduplicate by message id); delivery tags start over at 1.
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

    init(limit: Int) {
        precondition(limit > 0)
        self.limit = limit
    }

    var isIdle: Bool { self.waiting.isEmpty && self.inFlight.isEmpty }
    var hasRoom: Bool { self.inFlight.count < self.limit }

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
        for pending in self.waiting {
            if isStale(pending) { dropped(pending) } else { kept.append(pending) }
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
        if multiple {
            var settled: [Entry] = []
            while let first = self.inFlight.first, first.tag <= tag {
                settled.append(self.inFlight.removeFirst())
            }
            return settled
        }
        guard let index = self.inFlight.firstIndex(where: { $0.tag == tag }) else { return [] }
        return [self.inFlight.remove(at: index)]
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
        return all
    }
}
