import Foundation
import MessengerContracts
import Synchronization

/// The login sessions auth revoked (from `auth.sessions_revoked.v1` and
/// `auth.revoked_sessions.v1`): a token of one of them is refused although its signature and
/// expiry are fine, until its last token expires (``contains(_:now:)``). Each session is kept
/// ``retention`` longer than that (``hasEnded(_:now:)``), for the commands its sockets queued:
/// a socket outlives its token, and a connection's queue runs after the connection closed.
public final class RevokedSessionSet: Sendable {
    private struct State {
        var until: [UUID: Date] = [:]
        /// The size past which an insert first drops the sessions kept past their retention.
        var pruneAt = 1024
    }

    /// How long a session is kept after its last token expired. A revoked session's queued
    /// commands are refused as they come up, without a wait for the rate limit, so its queues
    /// empty within seconds of it being held; an hour covers an announcement that comes late
    /// too (until the forty-ninth session a session was forgotten when its tokens expired, and
    /// what its sockets still had queued then ran: a review).
    public static let retention: TimeInterval = 3600

    private let state = Mutex(State())

    public init() {}

    /// Adds the sessions of `revoked` (again, harmlessly); returns those that were not held yet.
    /// An announcement older than its ``retention`` adds nothing.
    @discardableResult
    public func insert(_ revoked: RevokedSessions, now: Date = Date()) -> [UUID] {
        guard revoked.until + Self.retention > now else { return [] }
        return self.state.withLock { state in
            var added: [UUID] = []
            for session in revoked.sessionIds.map(\.uuid) {
                if let known = state.until[session], known >= revoked.until { continue }
                if state.until.updateValue(revoked.until, forKey: session) == nil { added.append(session) }
            }
            if state.until.count >= state.pruneAt {
                state.until = state.until.filter { $0.value + Self.retention > now }
                state.pruneAt = max(1024, state.until.count * 2)
            }
            return added
        }
    }

    /// Whether `session` was revoked and may still have unexpired tokens: a token of it is
    /// refused.
    public func contains(_ session: UUID, now: Date = Date()) -> Bool {
        self.state.withLock { state in
            guard let until = state.until[session] else { return false }
            return until > now
        }
    }

    /// Whether `session` was revoked, its tokens expired or not (within ``retention``): a
    /// command of it is refused.
    public func hasEnded(_ session: UUID, now: Date = Date()) -> Bool {
        self.state.withLock { state in
            guard let until = state.until[session] else { return false }
            return until + Self.retention > now
        }
    }

    /// How many sessions are held, those past their retention not yet dropped included.
    public var count: Int { self.state.withLock { $0.until.count } }
}
