/// The events a socket was sent and has not acknowledged, as far as its gateway knows, and when
/// they went out: what its stream pushes again while they stay unacknowledged
/// (``SocketEventStream/pushAgainIfUnacknowledged(now:after:atMost:)``).
///
/// Delivery pushes an unacknowledged event again on its own retry levels (2 s to 5 min by
/// default) and then stops; the contract has it delivered again on the user's open sockets until
/// it is acknowledged or expires, and only the gateway knows which sockets are open. The first
/// push again comes `base` after the event went out, and each one after waits twice as long as
/// the one before, up to `cap`, until the event is acknowledged.
///
/// The sends are kept as runs of seqs, one per second at most (an event sent within a second of
/// the run before joins it, and counts from that run's time), and at most
/// ``maximumRuns``: a socket sent an event a second for an hour without acknowledging any keeps
/// 1,024 entries, not 3,600. A push again sends every unacknowledged event up to the newest run
/// that is due, and those runs become one, which waits twice as long; the runs after it keep
/// their own time.
struct UnacknowledgedPushes: Sendable {
    /// A run of events sent: the last seq of the run, when its first event went out (or when it
    /// was last pushed again), and how many times it was pushed again.
    private struct Run {
        var seq: Int64
        var at: ContinuousClock.Instant
        var rounds = 0
    }

    /// Every event up to this seq is acknowledged (by one of the user's devices), as far as the
    /// socket knows: its own `ack_events`, or a fetch that found them acknowledged.
    private(set) var acknowledged: Int64
    /// The runs, in ascending order of seq.
    private var runs: [Run] = []

    static let granularity: Duration = .seconds(1)
    static let maximumRuns = 1024

    /// A socket that resumed after `seq` (its `lastSeq`): what it had before is not its to
    /// acknowledge.
    init(after seq: Int64) {
        self.acknowledged = seq
    }

    /// Whether something the socket was sent is unacknowledged.
    var isEmpty: Bool { self.runs.isEmpty }

    /// The most times a run was pushed again (for tests).
    var rounds: Int { self.runs.map(\.rounds).max() ?? 0 }

    /// The socket's resume point came down to the user's latest seq (a `lastSeq` past it).
    mutating func resume(atMost latest: Int64) {
        self.acknowledged = min(self.acknowledged, latest)
    }

    /// The socket was sent every event up to `seq` by `now`.
    mutating func sent(through seq: Int64, at now: ContinuousClock.Instant) {
        guard seq > (self.runs.last?.seq ?? self.acknowledged) else { return }
        if let last = self.runs.last,
            (last.rounds == 0 && now - last.at < Self.granularity) || self.runs.count >= Self.maximumRuns
        {
            self.runs[self.runs.count - 1].seq = seq
        } else {
            self.runs.append(Run(seq: seq, at: now))
        }
    }

    /// Every event up to `seq` is acknowledged.
    mutating func acknowledge(through seq: Int64) {
        guard seq > self.acknowledged else { return }
        self.acknowledged = seq
        self.runs.removeAll { $0.seq <= seq }
    }

    /// The highest seq of the runs that went out long enough before `now` to be pushed again,
    /// if any: `base` after they went out, doubled for each time they were pushed again, `cap`
    /// at most.
    func due(at now: ContinuousClock.Instant, after base: Duration, atMost cap: Duration) -> Int64? {
        self.runs.last(where: { now - $0.at >= min(base * (1 << min($0.rounds, 20)), max(base, cap)) })?.seq
    }

    /// The events up to `seq` were pushed again at `now`: their runs become one, which waits
    /// twice as long as the longest of them.
    mutating func pushedAgain(through seq: Int64, at now: ContinuousClock.Instant) {
        let pushed = self.runs.prefix { $0.seq <= seq }
        guard let last = pushed.last else { return }
        let rounds = pushed.map(\.rounds).max() ?? 0
        self.runs.replaceSubrange(0..<pushed.count, with: [Run(seq: last.seq, at: now, rounds: rounds + 1)])
    }
}
