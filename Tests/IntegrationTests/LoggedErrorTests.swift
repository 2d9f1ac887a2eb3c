import MessengerContracts
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing

/// How a PostgreSQL error reads in the logs (``LoggedError``): its SQLSTATE and the server's
/// message, never postgres-nio's "Generic description", the statement's values or the server's
/// detail.
@Suite("Logged database errors", .timeLimit(.minutes(1)))
struct LoggedErrorTests {
    @Test("a unique violation is logged by its SQLSTATE and message, without the duplicated value")
    func uniqueViolation() async throws {
        let database = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public").makeDatabase(
            logger: TestEnvironment.logger)
        try await whileRunning(database) {
            let logged = try await database.withConnection { connection -> String in
                try await connection.query(
                    "CREATE TEMPORARY TABLE logged (value text PRIMARY KEY)", logger: TestEnvironment.logger)
                let value = "private-value@example.com"
                try await connection.query("INSERT INTO logged VALUES (\(value))", logger: TestEnvironment.logger)
                do {
                    try await connection.query("INSERT INTO logged VALUES (\(value))", logger: TestEnvironment.logger)
                    return "no error"
                } catch {
                    return "\(LoggedError(error))"
                }
            }
            #expect(logged.contains("sqlstate 23505") && logged.contains("duplicate key value violates unique constraint"))
            #expect(!logged.contains("private-value") && !logged.contains("Generic description"))
        }
    }
}
