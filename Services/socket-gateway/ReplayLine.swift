import DequeModule

/// Which sockets' replays run now: at most ``maximumRunning`` at once; once half of those places
/// are taken, a user with ``maximumPerUser`` replays running starts no more; the others wait in
/// the order they came.
///
/// A replay holds its place while its pages are sent, at the pace the client reads them. Until
/// the forty-third session the line had no bound per user: one user's 512 sockets that read a
/// slice a minute (a large backlog, a client reading just fast enough not to be closed) held
/// every place for hours, and every other socket that connected to the gateway meanwhile got no
/// replay and no live durable event (a review found it). Now such a user holds half the places
/// at most. The bound per user holds only in a busy line: in a quiet one, a user whose two
/// devices replay slowly does not make a third wait for them.
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

    /// A replay of `user` ended: the waiting ones that may start now, in the order they came,
    /// each counted as running (the line falling under half full can let several start).
    mutating func finish(user: String) -> [(user: String, entry: Entry)] {
        self.running -= 1
        let left = (self.runningByUser[user] ?? 1) - 1
        self.runningByUser[user] = left > 0 ? left : nil
        var starting: [(user: String, entry: Entry)] = []
        var index = self.waiting.startIndex
        while index < self.waiting.endIndex, self.running < self.maximumRunning {
            guard self.mayStart(self.waiting[index].user) else {
                index += 1
                continue
            }
            let next = self.waiting.remove(at: index)
            self.start(next.user)
            starting.append(next)
        }
        return starting
    }

    /// Forgets the waiting entries that `match` (their sockets left): until the fiftieth session
    /// each stayed, and with it its closed connection, until the line reached it, so a client
    /// reconnecting again and again while the line was full piled them up (a review).
    mutating func removeWaiting(where match: (Entry) -> Bool) {
        self.waiting.removeAll { match($0.entry) }
    }

    private func mayStart(_ user: String) -> Bool {
        guard self.running < self.maximumRunning else { return false }
        return self.running < self.maximumRunning / 2 || self.runningByUser[user, default: 0] < self.maximumPerUser
    }

    private mutating func start(_ user: String) {
        self.running += 1
        self.runningByUser[user, default: 0] += 1
    }
}
