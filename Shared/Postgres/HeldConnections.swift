/// The connections a ``Database`` keeps leased from its pool between calls, and which of them
/// to give back: a pure state, tested without I/O (`Held` is a connection and the means to
/// release it).
///
/// postgres-nio's pool (1.33) arms an idle timer each time a connection above its minimum comes
/// back and cancels it at the next lease, which cost messaging and delivery 10 to 11 % of their
/// CPU per message (docs/performance.md); a minimum would save it, but crashes the process after a
/// server restart (``DatabaseConfiguration/maximumConnections``). So the database keeps the
/// connections its calls leased, up to `maximum`, and lends them to the next calls itself, most
/// recently used first. One left idle for a whole look of the watchdog goes back to the pool, as
/// do all of them at shutdown, and any whose call failed.
struct HeldConnections<Held> {
    private var idle: [(held: Held, used: Bool)] = []
    /// Those kept, idle or lent to a call.
    private(set) var count = 0
    /// At most this many are kept; calls beyond them lease from the pool as before.
    let maximum: Int
    private var isReleasing = false

    init(maximum: Int) {
        self.maximum = maximum
    }

    /// A connection leased from the pool ended its first call well: whether to keep it, idle.
    mutating func keep(_ held: Held) -> Bool {
        guard !self.isReleasing, self.count < self.maximum else { return false }
        self.count += 1
        self.idle.append((held, true))
        return true
    }

    /// The most recently used idle connection, lent to a call until ``giveBack(_:reusable:)``.
    mutating func lend() -> Held? {
        self.idle.popLast()?.held
    }

    /// A lent connection's call ended: whether it is kept (idle again) or to be released, as it
    /// is when the call failed or the connection closed (`reusable` false), or at shutdown.
    mutating func giveBack(_ held: Held, reusable: Bool) -> Bool {
        guard reusable, !self.isReleasing else {
            self.count -= 1
            return false
        }
        self.idle.append((held, true))
        return true
    }

    /// The watchdog's look: the idle connections no call used since the last look, to release.
    mutating func look() -> [Held] {
        var unused: [Held] = []
        var kept: [(held: Held, used: Bool)] = []
        for entry in self.idle {
            if entry.used { kept.append((entry.held, false)) } else { unused.append(entry.held) }
        }
        self.idle = kept
        self.count -= unused.count
        return unused
    }

    /// Shutdown: every idle connection, to release; those lent are released when they come
    /// back, and none is kept any more.
    mutating func releaseAll() -> [Held] {
        self.isReleasing = true
        let all = self.idle.map(\.held)
        self.idle = []
        self.count -= all.count
        return all
    }
}
