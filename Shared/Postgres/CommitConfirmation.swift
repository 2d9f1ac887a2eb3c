import Logging
import PostgresNIO

/// Writes outside a transaction whose commit is known before they return.
///
/// PostgreSQL commits a statement that runs outside a transaction block when it handles the
/// `Sync` after it, once the statement's `CommandComplete` is already written; postgres-nio
/// (1.33) returns the statement's rows at that `CommandComplete`. A backend terminated between
/// the two (an operator's `pg_terminate_backend`, a fast shutdown or a failover) flushes the
/// `CommandComplete` ahead of its fatal error: the statement looks done and was rolled back. A
/// commit that fails (a deferred constraint) arrives the same way, after the rows. The
/// forty-first session found delivery acking domain events whose recording had been rolled back
/// so (Tests/IntegrationTests/CommitConfirmationTests.swift shows it).
///
/// postgres-nio sends a connection's next statement only after the `ReadyForQuery` that follows
/// the commit, so a trivial statement that succeeds after a write confirms the write's commit.
/// Inside a transaction the `COMMIT` statement's own answer confirms it, and reads need nothing.
extension PostgresConnection {
    /// Returns once every statement this connection ran before is committed; throws when the
    /// last one's commit failed or cannot be known (the connection was lost).
    public func confirmCommitted(logger: Logger) async throws {
        _ = try await self.query("SELECT 1", logger: logger).collect()
    }

    /// Runs one statement outside a transaction, and returns its rows once it is committed.
    public func write(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        let rows = try await self.query(query, logger: logger).collect()
        try await self.confirmCommitted(logger: logger)
        return rows
    }
}

extension Database {
    /// Runs one statement that changes data outside a transaction, on a pooled connection, and
    /// returns its rows once it is committed (``PostgresConnection/write(_:logger:)``); use
    /// ``query(_:logger:)`` for reads and a transaction for several statements that go together.
    @discardableResult
    public func write(_ query: PostgresQuery, logger: Logger) async throws -> Rows {
        try await self.withConnection { connection in
            Rows(rows: try await connection.write(query, logger: logger))
        }
    }
}
