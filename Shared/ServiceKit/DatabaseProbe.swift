import Logging
import MessengerPostgres
import Synchronization
import ThreadedIO

/// Whether PostgreSQL answers `SELECT 1` within a time limit, for `/readyz`.
///
/// A look answers within its limit whatever the database does: a frozen server (its process
/// stopped, a network partition without resets) leaves a statement unanswered for as long as it
/// lasts, and a statement's caller waits for its outcome even when cancelled (``Database``).
/// Until the fifty-fifth session the look awaited that statement in a task group, and `/readyz`
/// hung with it. One `SELECT 1` is in flight at a time: looks made while one is unanswered wait
/// for that one (up to their own limit), so a frozen server gathers no statements, however often
/// it is probed. One unanswered for ten limits is left behind and a new one sent (on another
/// connection, if the pool has one): a statement on a connection whose peer vanished without a
/// reset can go unanswered for as long as TCP takes to give up, a quarter of an hour, and
/// `/readyz` would say "down" all that time (the session's diff review).
final class DatabaseProbe: Sendable {
    private struct State {
        /// When the statement in flight was sent, and which one it is; nil when none is.
        var probe: (id: UInt64, sent: ContinuousClock.Instant)?
        var nextID: UInt64 = 0
        /// The looks waiting for a statement's answer.
        var waiting: [UInt64: Promise<Bool>] = [:]
    }

    private let database: Database
    private let limit: Duration
    private let logger: Logger
    private let state = Mutex(State())

    init(_ database: Database, limit: Duration, logger: Logger) {
        self.database = database
        self.limit = limit
        self.logger = logger
    }

    /// Whether the database answered within the limit.
    func answers() async -> Bool {
        let answer = Promise<Bool>()
        let stale = self.limit * 10
        let (look, probe) = self.state.withLock { state -> (UInt64, UInt64?) in
            state.nextID += 1
            let look = state.nextID
            state.waiting[look] = answer
            let now = ContinuousClock.now
            if let probe = state.probe, now - probe.sent < stale { return (look, nil) }
            state.nextID += 1
            state.probe = (state.nextID, now)
            return (look, state.nextID)
        }
        if let probe {
            Task {
                let answered = (try? await self.database.query("SELECT 1", logger: self.logger)) != nil
                let waiting = self.state.withLock { state -> [Promise<Bool>] in
                    let current = state.probe?.id == probe
                    // A stale statement that failed at last says nothing of the newer one's
                    // connection: its looks wait for that one (or their limit).
                    guard answered || current else { return [] }
                    if current { state.probe = nil }
                    defer { state.waiting = [:] }
                    return Array(state.waiting.values)
                }
                for promise in waiting { promise.succeed(answered) }
            }
        }
        let limit = self.limit
        Task {
            try? await Task.sleep(for: limit)
            _ = self.state.withLock { $0.waiting.removeValue(forKey: look) }
            answer.succeed(false)
        }
        return (try? await answer.outcome()) ?? false
    }
}
