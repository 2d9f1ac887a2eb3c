import Logging
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing

/// A prepared statement whose first preparation on a connection failed for a passing reason (a
/// table locked past `lock_timeout`), against the real PostgreSQL. postgres-nio remembers that
/// failure for the connection's life (``Database/mayHaveFailedPreparation(_:)``); ``Database``
/// closes such a connection, so the statement works again once the lock is gone.
@Suite("Prepared statements after a failed preparation", .timeLimit(.minutes(1)))
struct FailedPreparationTests {
    /// Counts the probe table's rows (a statement that names the table, so its preparation takes
    /// the table's lock).
    struct CountProbes: PostgresPreparedStatement {
        static let name = "test.count_probes"
        static let sql = "SELECT count(*) FROM probe"
        typealias Row = Int64
        func makeBindings() -> PostgresBindings { PostgresBindings() }
        func decodeRow(_ row: PostgresRow) throws -> Int64 { try row.decode(Int64.self) }
    }

    func countProbes(_ database: Database) async throws -> Int64 {
        try await database.withConnection { connection in
            var count: Int64 = -1
            for try await rows in try await connection.execute(CountProbes(), logger: TestEnvironment.logger) {
                count = rows
            }
            return count
        }
    }

    /// Runs `body` with a schema holding the probe table (one row), the schema's ``Database``
    /// of the tests' own (`holder`), and a running ``Database`` of one connection on it, so that
    /// each execution gets the connection of the one before.
    func withOneConnection(
        lockTimeout: Duration? = nil, _ body: (_ holder: Database, _ database: Database) async throws -> Void
    ) async throws {
        let probe = Migration(
            version: 1, name: "probe", statements: ["CREATE TABLE probe (id int)", "INSERT INTO probe VALUES (1)"])
        try await withFreshSchema("failed_preparation", migrations: [probe]) { holder, schema in
            var configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: schema)
            configuration.maximumConnections = 1
            configuration.lockTimeout = lockTimeout
            let database = configuration.makeDatabase(logger: TestEnvironment.logger)
            try await whileRunning(database) { try await body(holder, database) }
        }
    }

    @Test("a preparation that waited past lock_timeout fails once; the same statement works after the lock is gone")
    func lockTimeoutDuringPreparation() async throws {
        let logger = TestEnvironment.logger
        try await self.withOneConnection(lockTimeout: .milliseconds(200)) { holder, database in
            _ = try await database.query("SELECT 1", logger: logger)  // the connection, opened
            let failure = try await holder.transaction(logger: logger) { connection -> (any Error)? in
                try await connection.query("LOCK TABLE probe IN ACCESS EXCLUSIVE MODE", logger: logger)
                do {
                    _ = try await self.countProbes(database)
                    return nil
                } catch {
                    return error
                }
            }
            #expect(failure.map(Database.isLockTimeout) == true, "\(failure.map { String(reflecting: $0) } ?? "none")")
            #expect(failure.map(Database.mayHaveFailedPreparation) == true)
            #expect(try await self.countProbes(database) == 1)
            #expect(try await self.countProbes(database) == 1)
        }
    }

    @Test("a statement first prepared in an aborted transaction fails there, and works outside it")
    func abortedTransaction() async throws {
        let logger = TestEnvironment.logger
        try await self.withOneConnection { _, database in
            do {
                try await database.transaction(logger: logger) { connection in
                    do {
                        _ = try await connection.query("SELECT 1/0", logger: logger).collect()
                    } catch {
                        // Caught, and the transaction goes on: it is aborted (25P02).
                    }
                    for try await _ in try await connection.execute(CountProbes(), logger: logger) {}
                }
                Issue.record("the aborted transaction ran the statement")
            } catch {
                #expect(Database.mayHaveFailedPreparation(error), "\(String(reflecting: error))")
            }
            let count = try await self.countProbes(database)
            #expect(count == 1)
        }
    }

    @Test("every failure is taken for a possible failed preparation but those only an execution raises")
    func classification() async throws {
        let logger = TestEnvironment.logger
        let database = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public").makeDatabase(
            logger: logger)
        try await whileRunning(database) {
            var statements: [(String, Bool)] = [
                ("SELECT 1/0", false),
                ("SELECT * FROM no_such_table_at_all", true),
            ]
            for (state, expected) in [
                ("55P03", true), ("40P01", true), ("57014", true), ("53200", true), ("58030", true), ("XX000", true),
                ("42501", true), ("25P02", true), ("22021", false), ("23505", false), ("40001", false), ("P0001", false),
            ] {
                statements.append(("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '\(state)'; END $$", expected))
            }
            for (statement, expected) in statements {
                do {
                    try await database.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    Issue.record("\(statement) did not fail")
                } catch {
                    #expect(Database.mayHaveFailedPreparation(error) == expected, "\(statement)")
                }
                // A connection a failure closed is replaced.
                try await database.query("SELECT 1", logger: logger)
            }
        }
    }
}
