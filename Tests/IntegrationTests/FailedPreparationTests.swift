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

    @Test("a preparation that waited past lock_timeout fails once; the same statement works after the lock is gone")
    func lockTimeoutDuringPreparation() async throws {
        let logger = TestEnvironment.logger
        let probe = Migration(
            version: 1, name: "probe", statements: ["CREATE TABLE probe (id int)", "INSERT INTO probe VALUES (1)"])
        try await withFreshSchema("failed_preparation", migrations: [probe]) { holder, schema in
            // One connection, so that the second execution gets the connection of the first.
            var configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: schema)
            configuration.maximumConnections = 1
            configuration.lockTimeout = .milliseconds(200)
            let database = configuration.makeDatabase(logger: logger)
            try await whileRunning(database) {
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
    }

    @Test("only passing failures are taken for a failed preparation: a lock, a deadlock, a cancel, resources")
    func classification() async throws {
        let logger = TestEnvironment.logger
        let database = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public").makeDatabase(
            logger: logger)
        try await whileRunning(database) {
            for (statement, expected) in [
                ("SELECT 1/0", false),
                ("SELECT * FROM no_such_table_at_all", false),
                ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '55P03'; END $$", true),
                ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01'; END $$", true),
                ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '57014'; END $$", true),
                ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '53200'; END $$", true),
                ("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$", false),
            ] {
                do {
                    try await database.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    Issue.record("\(statement) did not fail")
                } catch {
                    #expect(Database.mayHaveFailedPreparation(error) == expected, "\(statement)")
                }
                // The connection a failure closed is replaced.
                try await database.query("SELECT 1", logger: logger)
            }
        }
    }
}
