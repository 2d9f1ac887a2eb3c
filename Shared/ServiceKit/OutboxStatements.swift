import Foundation
import MessengerPostgres
import PostgresNIO

/// The relay's statements, prepared once per connection: every message's outbox row is
/// relayed.
enum OutboxStatements {
    /// The relay's turn: true when this transaction now holds it, false when another replica does.
    ///
    /// A statement of its own, before ``OldestRows``: a statement sees the rows committed when it
    /// started, so one that took the turn in its own course could start before the previous holder
    /// committed its deletes, get the turn right after, and publish those rows a second time.
    struct TakeTurn: PostgresPreparedStatement {
        static let sql = "SELECT pg_try_advisory_xact_lock($1)"
        typealias Row = Bool
        var key: Int64
        func makeBindings() -> PostgresBindings { PostgresBindings(self.key) }
        func decodeRow(_ row: PostgresRow) throws -> Bool { try row.decode(Bool.self) }
    }

    /// The oldest rows (every row is still to publish), read once the turn is held.
    struct OldestRows: PreparedRows {
        static let sql = "SELECT position, event_id, type, body FROM outbox ORDER BY position LIMIT $1"
        var limit: Int64
        func makeBindings() -> PostgresBindings { PostgresBindings(self.limit) }
    }

    /// Removes the rows the broker confirmed.
    struct DeletePublished: PreparedCommand {
        static let sql = "DELETE FROM outbox WHERE position = ANY($1::bigint[])"
        var positions: [Int64]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.positions) }
    }
}
