import Foundation
import MessengerContracts
import Synchronization

/// The login sessions auth revoked whose access tokens may not have expired yet (from
/// `auth.sessions_revoked.v1` and `auth.revoked_sessions.v1`): a token of one of them is
/// refused although its signature and expiry are fine. Each session is kept until its last token
/// expires, then forgotten.
public final class RevokedSessionSet: Sendable {
    private struct State {
        var until: [UUID: Date] = [:]
        /// The size past which an insert first drops the sessions whose tokens have all expired.
        var pruneAt = 1024
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds the sessions of `revoked` (again, harmlessly); returns those that were not held yet.
    @discardableResult
    public func insert(_ revoked: RevokedSessions, now: Date = Date()) -> [UUID] {
        guard revoked.until > now else { return [] }
        return self.state.withLock { state in
            var added: [UUID] = []
            for session in revoked.sessionIds.map(\.uuid) {
                if let known = state.until[session], known >= revoked.until { continue }
                if state.until.updateValue(revoked.until, forKey: session) == nil { added.append(session) }
            }
            if state.until.count >= state.pruneAt {
                state.until = state.until.filter { $0.value > now }
                state.pruneAt = max(1024, state.until.count * 2)
            }
            return added
        }
    }

    /// Whether `session` was revoked and may still have unexpired tokens.
    public func contains(_ session: UUID, now: Date = Date()) -> Bool {
        self.state.withLock { state in
            guard let until = state.until[session] else { return false }
            return until > now
        }
    }

    /// How many sessions are held, expired ones not yet dropped included.
    public var count: Int { self.state.withLock { $0.until.count } }
}
