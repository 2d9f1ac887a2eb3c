/// The line of password checks (bcrypt) waiting for or running on the blocking pool's threads,
/// and how long one takes: enough to tell, as a check arrives, whether it could end before its
/// caller stops waiting. Pure state (``PasswordHasher`` keeps it under a lock), so it is tested
/// without threads or clocks.
///
/// The estimate is deliberately simple: every check ahead takes the mean time of the last ones
/// (a moving average), and the threads work through the line together. Checks already running
/// count as whole, so the estimate errs on the long side by at most one round.
struct PasswordCheckQueue: Sendable {
    /// How many checks run at once.
    let threads: Int
    /// Checks admitted and not yet ended (waiting or running).
    private(set) var inLine = 0
    /// The moving average of one check's time on a thread.
    private(set) var meanDuration: Duration

    init(threads: Int, firstDuration: Duration) {
        self.threads = max(1, threads)
        self.meanDuration = firstDuration
    }

    /// When a check that arrives at `now` can be expected to end.
    func expectedEnd(arrivingAt now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        now + self.waitForAThread + self.meanDuration
    }

    /// How long a check arriving now would wait for a thread: when one refused now could be
    /// taken at once, if nothing else arrived meanwhile.
    var waitForAThread: Duration {
        self.meanDuration * (self.inLine / self.threads)
    }

    /// Takes a check into the line unless it would wait for a thread and is expected to end
    /// after `deadline` (nil: its caller waits as long as it takes). A check that finds a thread
    /// free is always taken: it starts at once, and its time corrects a mean grown too long
    /// (one that alone passes every deadline would otherwise refuse every check for good).
    /// Returns whether it was taken.
    mutating func admit(at now: ContinuousClock.Instant, deadline: ContinuousClock.Instant?) -> Bool {
        guard self.wouldTake(at: now, deadline: deadline) else { return false }
        self.inLine += 1
        return true
    }

    /// Whether ``admit(at:deadline:)`` would take a check now, without taking it.
    func wouldTake(at now: ContinuousClock.Instant, deadline: ContinuousClock.Instant?) -> Bool {
        guard let deadline, self.inLine >= self.threads else { return true }
        return self.expectedEnd(arrivingAt: now) <= deadline
    }

    /// A check taken into the line ended; `duration` is its time on a thread, nil when it was
    /// skipped at its turn.
    mutating func ended(after duration: Duration?) {
        self.inLine -= 1
        if let duration { self.meanDuration = self.meanDuration * 0.8 + duration * 0.2 }
    }
}
