import NIOCore

/// The Engine.IO heartbeat of one session, without I/O: the server pings `interval` after the
/// session opened and after each pong, and a ping unanswered for `timeout` ends the session.
/// The session arms one timer at ``nextDeadline`` and asks ``due(at:)`` what to do when it fires.
///
/// While the server does not read the connection (``pauseReading()``: the client sent more
/// commands than it has answered yet), the client's pong may be waiting unread behind its own
/// commands, so an unanswered ping does not end the session then: it gets its whole `timeout`
/// again from the moment reading resumes. Pings go on meanwhile, one each `timeout`: a stock
/// JavaScript client closes a connection that sends it no ping for `interval` + `timeout`,
/// whatever else it reads (until the forty-second session none went out while paused, and a
/// browser that sent two minutes of commands at once timed the server out).
struct EngineHeartbeat: Sendable {
    enum Action: Equatable {
        case sendPing
        case timedOut
        /// Too early (a timer that fired before its deadline): arm again.
        case wait
    }

    let interval: TimeAmount
    let timeout: TimeAmount
    private var nextPingAt: NIODeadline
    /// Since when the outstanding ping's answer is awaited: when it was sent, or when the
    /// server last began to read the connection again.
    private(set) var pingSentAt: NIODeadline?
    private(set) var isReadingPaused = false

    init(interval: Duration, timeout: Duration, openedAt: NIODeadline) {
        self.interval = TimeAmount(interval)
        self.timeout = TimeAmount(timeout)
        self.nextPingAt = openedAt + self.interval
    }

    /// When the timer must fire next: the next ping, or the deadline of the outstanding one.
    var nextDeadline: NIODeadline {
        self.pingSentAt.map { $0 + self.timeout } ?? self.nextPingAt
    }

    mutating func due(at now: NIODeadline) -> Action {
        if let sentAt = self.pingSentAt {
            guard now - sentAt >= self.timeout else { return .wait }
            guard !self.isReadingPaused else {
                self.pingSentAt = now
                return .sendPing
            }
            return .timedOut
        }
        guard now >= self.nextPingAt else { return .wait }
        self.pingSentAt = now
        return .sendPing
    }

    /// A pong arrived; true when it answered the outstanding ping (the timer must be re-armed).
    mutating func pong(at now: NIODeadline) -> Bool {
        guard self.pingSentAt != nil else { return false }
        self.pingSentAt = nil
        self.nextPingAt = now + self.interval
        return true
    }

    /// Whether the outstanding ping is past its deadline.
    func isOverdue(at now: NIODeadline) -> Bool {
        guard !self.isReadingPaused else { return false }
        return self.pingSentAt.map { now - $0 >= self.timeout } ?? false
    }

    /// The server stopped reading the connection.
    mutating func pauseReading() {
        self.isReadingPaused = true
    }

    /// The server reads the connection again: an outstanding ping gets its whole timeout from
    /// `now`. True when that moved the deadline (the timer must be re-armed).
    mutating func resumeReading(at now: NIODeadline) -> Bool {
        guard self.isReadingPaused else { return false }
        self.isReadingPaused = false
        guard self.pingSentAt != nil else { return false }
        self.pingSentAt = now
        return true
    }
}
