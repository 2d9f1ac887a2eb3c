/// Keeps a consumer that runs on an event loop from holding it for long.
///
/// NIO's event loop runs the tasks queued on it until none is left before it looks at its
/// sockets again, so `Task.yield()` gives its I/O no turn: a consumer whose next message is
/// always ready (a backlog) ran on without a break, and the connections on its loop waited
/// (the forty-ninth session measured `/healthz` timing out for minutes). A stretch of work with
/// no real wait between messages longer than ``longest`` ends in a sleep of ``pause``, which
/// lets the loop wait on its sockets. A consumer that keeps up never sleeps.
struct BusyStretch {
    static let longest = Duration.milliseconds(20)
    static let pause = Duration.milliseconds(1)
    /// A gap between two messages shorter than this is no wait: the next one was ready.
    static let noWait = Duration.microseconds(100)

    private var started: ContinuousClock.Instant?
    private var lastDone: ContinuousClock.Instant?
    /// How many times it slept.
    private(set) var pauses = 0

    /// Called as a message comes, before its work: sleeps once the stretch of back-to-back work
    /// is long.
    mutating func pauseIfLong(now: ContinuousClock.Instant = .now) async {
        guard let done = self.lastDone, now - done < Self.noWait, let started = self.started else {
            self.started = now  // the consumer waited for this message: a stretch starts
            return
        }
        guard now - started >= Self.longest else { return }
        try? await Task.sleep(for: Self.pause)
        self.pauses += 1
        self.started = nil  // the next message starts a stretch
    }

    /// Called once a message's work is done.
    mutating func done(now: ContinuousClock.Instant = .now) {
        self.lastDone = now
    }
}
