/// The ordering rule of one socket's durable events (protocol.md, "Events"): each `seq` once,
/// ascending, no gaps. A pure state machine; the gateway feeds it live pushes and fetched
/// (replayed) events and does what it decides.
public struct SeqOrdering: Sendable, Hashable {
    /// The highest seq this socket has been given.
    public private(set) var delivered: Int64

    /// For a socket that has everything up to `lastSeq` (its CONNECT's `lastSeq`, 0 when absent).
    public init(after lastSeq: Int64) {
        self.delivered = max(0, lastSeq)
    }

    /// The user's latest seq, learned before anything was given to the socket: a `lastSeq`
    /// beyond it (a client that kept another account's seq, or one from before a reset) comes
    /// down to it, so that the events after it are not taken for ones the socket has.
    public mutating func resume(atMost latest: Int64) {
        self.delivered = min(self.delivered, max(0, latest))
    }

    /// The socket's replay ended with the user's latest seq `latest`: every event up to it was
    /// in the replay or is acknowledged (or expired), so none is missing. Without it, a new
    /// device of a user who had acknowledged everything took its first live push for a gap,
    /// and the gap's fill (which fetches acknowledged events too) sent it up to 500 old events.
    public mutating func caughtUp(through latest: Int64) {
        self.delivered = max(self.delivered, latest)
    }

    public enum Decision: Hashable, Sendable {
        /// Send it now.
        case emit
        /// The socket has it already.
        case drop
        /// Events between `after` and this one are missing: fetch them (``accept(fetched:)``)
        /// first, then ``decideAfterGap(seq:)``.
        case fillGap(after: Int64)
    }

    /// A live push. A redelivery (an unacknowledged event pushed again) goes out even when the
    /// socket had it: the client drops what it already has, and may have lost it.
    public mutating func decide(seq: Int64, redelivery: Bool) -> Decision {
        if seq <= self.delivered { return redelivery ? .emit : .drop }
        if seq == self.delivered + 1 {
            self.delivered = seq
            return .emit
        }
        return .fillGap(after: self.delivered)
    }

    /// A fetched event (replay or gap), fetched in seq order: true to send it.
    public mutating func accept(fetched seq: Int64) -> Bool {
        guard seq > self.delivered else { return false }
        self.delivered = seq
        return true
    }

    /// The live push that opened a gap, once the gap was filled as far as the log allows (events
    /// acknowledged on another device or expired are not fetched back): true to send it.
    public mutating func decideAfterGap(seq: Int64) -> Bool {
        self.accept(fetched: seq)
    }
}
