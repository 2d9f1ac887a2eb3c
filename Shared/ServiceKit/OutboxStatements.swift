import Foundation
import MessengerPostgres
import PostgresNIO

/// The relay's statements, prepared once per connection: every message's outbox row is
/// relayed.
enum OutboxStatements {
    /// A relay without the turn tries to take it (a session advisory lock, held by one relay
    /// across all replicas) and, in the same round trip, wakes the relay that holds it through
    /// `NOTIFY`: that relay publishes the rows this replica just committed. True when this
    /// connection now holds the turn.
    ///
    /// The session that takes it ends once it has been idle for `idleLimit` milliseconds
    /// (`idle_session_timeout`, PostgreSQL 14 and later), which releases the lock: a holder runs
    /// a statement at every poll, so only one that stopped (a frozen process, a network that drops
    /// its packets) goes quiet that long, and the next relay takes over.
    struct TakeTurnOrNudge: PostgresPreparedStatement {
        static let name = "outbox.take_turn_or_nudge"
        static let sql = """
            WITH turn AS MATERIALIZED (SELECT pg_try_advisory_lock($1) AS mine FROM (SELECT pg_notify($2, '')) AS nudge)
            SELECT mine, CASE WHEN mine THEN set_config('idle_session_timeout', $3, false) END FROM turn
            """
        typealias Row = Bool
        var key: Int64
        var channel: String
        var idleLimit: Int64
        func makeBindings() -> PostgresBindings { PostgresBindings(self.key, self.channel, String(self.idleLimit)) }
        func decodeRow(_ row: PostgresRow) throws -> Bool { try row.decode((Bool, String?).self).0 }
    }

    /// Deletes the rows the broker confirmed in the previous batch and reads the oldest of the
    /// others, in one round trip. The read sees the table as it was when the statement started,
    /// deleted rows included, so it leaves them out by position.
    struct DeletePublishedAndReadOldest: PreparedRows {
        static let name = "outbox.delete_published_and_read_oldest"
        static let sql = """
            WITH published AS (DELETE FROM outbox WHERE position = ANY($1::bigint[]))
            SELECT position, event_id, type, body FROM outbox
            WHERE position <> ALL($1::bigint[]) ORDER BY position LIMIT $2
            """
        var published: [Int64]
        var limit: Int64
        func makeBindings() -> PostgresBindings { PostgresBindings(self.published, self.limit) }
    }

    /// Removes the rows the broker confirmed, when the relay hands its turn back.
    struct DeletePublished: PreparedCommand {
        static let name = "outbox.delete_published"
        static let sql = "DELETE FROM outbox WHERE position = ANY($1::bigint[])"
        var positions: [Int64]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.positions) }
    }

    /// Hands the turn back, and gives the session its usual idle timeout again (the connection
    /// goes back to the pool, whose idle connections must not be ended under it).
    struct ReleaseTurn: PostgresPreparedStatement {
        static let name = "outbox.release_turn"
        static let sql = """
            SELECT pg_advisory_unlock($1), set_config('idle_session_timeout', reset_val, false)
            FROM pg_settings WHERE name = 'idle_session_timeout'
            """
        typealias Row = Bool
        var key: Int64
        func makeBindings() -> PostgresBindings { PostgresBindings(self.key) }
        func decodeRow(_ row: PostgresRow) throws -> Bool { try row.decode((Bool, String).self).0 }
    }
}
