import DequeModule

/// Which sockets' replays run now: at most ``maximumRunning`` at once, and at most
/// ``maximumPerUser`` of one user's; the others wait in the order they came.
///
/// A replay holds its place while its pages are sent, at the pace the client reads them. Until
/// the forty-third session the line had no bound per user: one user's 512 sockets that read a
/// slice a minute (a large backlog, a client reading just fast enough not to be closed) held
/// every place for hours, and every other socket that connected to the gateway meanwhile got no
/// replay and no live durable event (a review found it).
struct ReplayLine<Entry> {
    let maximumRunning: Int
    let maximumPerUser: Int
    private(set) var running = 0
    private var runningByUser: [String: Int] = [:]
    private var waiting: Deque<(user: String, entry: Entry)> = []

    init(maximumRunning: Int, maximumPerUser: Int) {
        self.maximumRunning = maximumRunning
        self.maximumPerUser = maximumPerUser
    }

    var waitingCount: Int { self.waiting.count }

    /// Whether `entry`, a replay of `user`, starts now (it then counts as running); if not, it
    /// waits for a ``finish(user:)``.
    mutating func arrive(_ entry: Entry, user: String) -> Bool {
        guard self.mayStart(user) else {
            self.waiting.append((user, entry))
            return false
        }
        self.start(user)
        return true
    }

    /// A replay of `user` ended: the first waiting one that may start now, which then counts as
    /// running (one ending frees one place, so at most one can start), or nil.
    mutating func finish(user: String) -> (user: String, entry: Entry)? {
        self.running -= 1
        let left = (self.runningByUser[user] ?? 1) - 1
        self.runningByUser[user] = left > 0 ? left : nil
        guard let index = self.waiting.firstIndex(where: { self.mayStart($0.user) }) else { return nil }
        let next = self.waiting.remove(at: index)
        self.start(next.user)
        return next
    }

    private func mayStart(_ user: String) -> Bool {
        self.running < self.maximumRunning && self.runningByUser[user, default: 0] < self.maximumPerUser
    }

    private mutating func start(_ user: String) {
        self.running += 1
        self.runningByUser[user, default: 0] += 1
    }
}
