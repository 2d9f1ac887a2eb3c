/// The events a socket was sent and has not acknowledged, as far as its gateway knows, and when
/// they went out: what its stream pushes again while they stay unacknowledged
/// (``SocketEventStream/pushAgainIfUnacknowledged(now:after:atMost:)``).
///
/// Delivery pushes an unacknowledged event again on its own retry levels (2 s to 5 min by
/// default) and then stops; the contract has it delivered again on the user's open sockets until
/// it is acknowledged or expires, and only the gateway knows which sockets are open. The first
/// push again comes `base` after the event went out, and each one after waits twice as long as
/// the one before, up to `cap`, until the socket has everything it was sent acknowledged.
///
/// The sends are kept as runs of seqs, one per second at most (an event sent within a second of
/// the run before joins it, and counts from that run's time), and at most
/// ``maximumRuns``: a socket sent an event a second for an hour without acknowledging any keeps
/// 1,024 entries, not 3,600.
struct UnacknowledgedPushes: Sendable {
    /// Every event up to this seq is acknowledged (by one of the user's devices), as far as the
    /// socket knows: its own `ack_events`, or a fetch that found them acknowledged.
    private(set) var acknowledged: Int64
    /// Each run's last seq and when its first event went out (or was last pushed again), in
    /// ascending order of both.
    private var runs: [(seq: Int64, at: ContinuousClock.Instant)] = []
    /// The pushes again since the socket last had everything acknowledged: each doubles the wait.
    private(set) var rounds = 0

    static let granularity: Duration = .seconds(1)
    static let maximumRuns = 1024

    /// A socket that resumed after `seq` (its `lastSeq`): what it had before is not its to
    /// acknowledge.
    init(after seq: Int64) {
        self.acknowledged = seq
    }

    /// Whether something the socket was sent is unacknowledged.
    var isEmpty: Bool { self.runs.isEmpty }

    /// The socket's resume point came down to the user's latest seq (a `lastSeq` past it).
    mutating func resume(atMost latest: Int64) {
        self.acknowledged = min(self.acknowledged, latest)
    }

    /// The socket was sent every event up to `seq` by `now`.
    mutating func sent(through seq: Int64, at now: ContinuousClock.Instant) {
        guard seq > (self.runs.last?.seq ?? self.acknowledged) else { return }
        if let last = self.runs.last, now - last.at < Self.granularity || self.runs.count >= Self.maximumRuns {
            self.runs[self.runs.count - 1].seq = seq
        } else {
            self.runs.append((seq, now))
        }
    }

    /// Every event up to `seq` is acknowledged.
    mutating func acknowledge(through seq: Int64) {
        guard seq > self.acknowledged else { return }
        self.acknowledged = seq
        self.runs.removeAll { $0.seq <= seq }
        if self.runs.isEmpty { self.rounds = 0 }
    }

    /// The highest seq of the events that went out long enough before `now` to be pushed again,
    /// if any: `base` after they went out, doubled for each push again since everything was
    /// last acknowledged, `cap` at most.
    func due(at now: ContinuousClock.Instant, after base: Duration, atMost cap: Duration) -> Int64? {
        let wait = min(base * (1 << min(self.rounds, 20)), max(base, cap))
        return self.runs.last(where: { now - $0.at >= wait })?.seq
    }

    /// The unacknowledged events were pushed again at `now`: each waits the next, doubled, wait
    /// from now.
    mutating func pushedAgain(at now: ContinuousClock.Instant) {
        guard let last = self.runs.last else { return }
        self.rounds += 1
        self.runs = [(last.seq, now)]
    }
}
