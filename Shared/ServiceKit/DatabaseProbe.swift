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
/// hung with it. At most one `SELECT 1` is in flight: looks made while one is unanswered wait for
/// that one (up to their own limit), so a frozen server gathers no statements, however often it
/// is probed.
final class DatabaseProbe: Sendable {
    private struct State {
        var probing = false
        var nextLook: UInt64 = 0
        /// The looks waiting for the statement in flight.
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
        let (look, startProbe) = self.state.withLock { state in
            state.nextLook += 1
            state.waiting[state.nextLook] = answer
            defer { state.probing = true }
            return (state.nextLook, !state.probing)
        }
        if startProbe {
            Task {
                let answered = (try? await self.database.query("SELECT 1", logger: self.logger)) != nil
                let waiting = self.state.withLock { state in
                    state.probing = false
                    defer { state.waiting = [:] }
                    return state.waiting.values
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
