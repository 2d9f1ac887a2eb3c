import Foundation
import MessengerPostgres
import PostgresNIO

/// The relay's and the inbox's statements, prepared once per connection: every message's outbox
/// row is relayed, and every consumed event claims an inbox row.
enum OutboxStatements {
    /// The relay's turn and, when this transaction holds it, the oldest rows (every row is still
    /// to publish); no rows when another replica has the turn.
    struct TakeTurn: PreparedRows {
        static let sql = """
            WITH turn AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1) AS mine)
            SELECT position, event_id, type, body FROM outbox, turn
            WHERE turn.mine ORDER BY position LIMIT $2
            """
        var key: Int64
        var limit: Int64
        func makeBindings() -> PostgresBindings { PostgresBindings(self.key, self.limit) }
    }

    /// Removes the rows the broker confirmed.
    struct DeletePublished: PreparedCommand {
        static let sql = "DELETE FROM outbox WHERE position = ANY($1::bigint[])"
        var positions: [Int64]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.positions) }
    }

    /// Claims message ids for a consumer; returns the ids claimed now.
    struct Claim: PreparedRows {
        static let sql = """
            INSERT INTO processed_messages (consumer, message_id)
            SELECT $1, id FROM unnest($2::uuid[]) AS id
            ON CONFLICT DO NOTHING RETURNING message_id
            """
        var consumer: String
        var ids: [UUID]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.consumer, self.ids) }
    }
}
