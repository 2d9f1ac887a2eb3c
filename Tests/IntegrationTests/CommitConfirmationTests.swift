import Foundation
import Logging
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing

/// A statement outside a transaction is committed only when PostgreSQL handles the `Sync` that
/// follows it, after the statement's `CommandComplete` has gone out; postgres-nio returns at
/// that `CommandComplete`. A backend terminated in between (an operator's
/// `pg_terminate_backend`, a server's fast shutdown) flushes the `CommandComplete` with its
/// fatal error, and the statement looks done while it was rolled back. A deferred trigger that
/// sleeps holds the commit open here long enough to terminate the backend inside it.
@Suite("Commits confirmed", .timeLimit(.minutes(1)))
struct CommitConfirmationTests {
    /// A fresh table whose commits take `seconds`, and a running ``Database``, for the test's
    /// body. The tests that terminate the backend inside the commit take ten: the watcher ends
    /// the sleep as soon as it sees it, and on a busy machine (the whole suite at once) it missed
    /// a window of one second, and once one of three.
    func withSlowCommits(seconds: Int = 10, _ body: (Database, _ table: String) async throws -> Void) async throws {
        let database = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public").makeDatabase(
            logger: TestEnvironment.logger)
        let table = "commit_probe_\(UInt32.random(in: 0...UInt32.max))"
        try await whileRunning(database) {
            let logger = TestEnvironment.logger
            try await database.query("CREATE TABLE \(unescaped: table) (id int)", logger: logger)
            try await database.query(
                """
                CREATE FUNCTION \(unescaped: table)_slow() RETURNS trigger LANGUAGE plpgsql
                AS $$ BEGIN PERFORM pg_sleep(\(unescaped: String(seconds))); RETURN NULL; END $$
                """, logger: logger)
            try await database.query(
                """
                CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON \(unescaped: table)
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION \(unescaped: table)_slow()
                """, logger: logger)
            do {
                try await body(database, table)
            } catch {
                try? await self.drop(table, database)
                throw error
            }
            try await self.drop(table, database)
        }
    }

    func drop(_ table: String, _ database: Database) async throws {
        try await database.query("DROP TABLE \(unescaped: table)", logger: TestEnvironment.logger)
        try await database.query("DROP FUNCTION \(unescaped: table)_slow()", logger: TestEnvironment.logger)
    }

    /// Terminates the backend of `connection`, from another connection, once it sleeps in the
    /// deferred trigger (its commit). A fixed half second missed the commit on a busy machine.
    func terminateSoon(_ connection: PostgresConnection, _ database: Database) async throws -> Task<Void, any Error> {
        let rows = try await connection.query("SELECT pg_backend_pid()", logger: TestEnvironment.logger)
        var pid: Int32 = 0
        for try await value in rows.decode(Int32.self) { pid = value }
        return Task {
            let started = ContinuousClock.now
            while true {
                guard ContinuousClock.now - started < .seconds(20) else {
                    throw TestFailure("the backend was never seen sleeping in its commit")
                }
                var sleeping = false
                for try await event in try await database.query(
                    "SELECT wait_event FROM pg_stat_activity WHERE pid = \(pid)", logger: TestEnvironment.logger
                ).decode(String?.self) { sleeping = event == "PgSleep" }
                if sleeping { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await database.query("SELECT pg_terminate_backend(\(pid))", logger: TestEnvironment.logger)
        }
    }

    /// The rows in `table`. The connection a test's backend was terminated under may go back to
    /// the pool before the pool sees it closed, and a query on it fails: such a count is asked
    /// again (about one run in five failed here on a busy machine).
    func count(_ table: String, _ database: Database) async throws -> Int {
        var attempt = 1
        while true {
            do {
                var count = 0
                for try await value in try await database.query(
                    "SELECT count(*)::int FROM \(unescaped: table)", logger: TestEnvironment.logger
                ).decode(Int.self) { count = value }
                return count
            } catch  where attempt < 5 {
                attempt += 1
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    @Test("postgres-nio alone: a statement outside a transaction can return its rows and be rolled back")
    func unconfirmedStatementLooksDone() async throws {
        try await self.withSlowCommits { database, table in
            let returned = try await database.client.withConnection { connection in
                let terminating = try await self.terminateSoon(connection, database)
                defer { terminating.cancel() }
                let rows = try await connection.query(
                    "INSERT INTO \(unescaped: table) VALUES (1) RETURNING id", logger: TestEnvironment.logger
                ).collect()
                try await terminating.value
                return rows.count
            }
            #expect(returned == 1)
            let stored = try await self.count(table, database)
            #expect(stored == 0, "postgres-nio now waits for the commit: Database.write's confirmation may go")
        }
    }

    @Test("write: the same statement fails as unavailable, and nothing is stored")
    func writeFailsWhenItsCommitFails() async throws {
        try await self.withSlowCommits { database, table in
            await #expect {
                try await database.withConnection { connection in
                    let terminating = try await self.terminateSoon(connection, database)
                    defer { terminating.cancel() }
                    return try await connection.write(
                        "INSERT INTO \(unescaped: table) VALUES (1) RETURNING id", logger: TestEnvironment.logger
                    ).count
                }
            } throws: { error in
                Database.isUnavailable(error)
            }
            let stored = try await self.count(table, database)
            #expect(stored == 0)
        }
    }

    @Test("Database.write: a statement whose commit goes through returns its rows, stored")
    func writeReturnsCommittedRows() async throws {
        try await self.withSlowCommits(seconds: 1) { database, table in
            let rows = try await database.write(
                "INSERT INTO \(unescaped: table) VALUES (7) RETURNING id", logger: TestEnvironment.logger)
            var ids: [Int] = []
            for try await id in rows.decode(Int.self) { ids.append(id) }
            #expect(ids == [7])
            let stored = try await self.count(table, database)
            #expect(stored == 1)
        }
    }
}
