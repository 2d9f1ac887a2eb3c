import NIOCore

/// The Engine.IO heartbeat of one session, without I/O: the server pings `interval` after the
/// session opened and after each pong, and a ping unanswered for `timeout` ends the session.
/// The session arms one timer at ``nextDeadline`` and asks ``due(at:)`` what to do when it fires.
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
    private(set) var pingSentAt: NIODeadline?

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
            return now - sentAt >= self.timeout ? .timedOut : .wait
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
        self.pingSentAt.map { now - $0 >= self.timeout } ?? false
    }
}
