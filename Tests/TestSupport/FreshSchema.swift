import MessengerPostgres
import PostgresNIO

/// Runs `body` with a running ``Database`` for a schema of its own, named from `prefix`, after
/// `migrations` ran in it; drops the schema afterwards, whether `body` threw or not.
public func withFreshSchema(
    _ prefix: String, migrations: [Migration] = [], _ body: (Database, String) async throws -> Void
) async throws {
    let schema = TestEnvironment.uniqueName(prefix)
    let client = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: schema).makeDatabase(
        logger: TestEnvironment.logger)
    let drop = PostgresQuery(unsafeSQL: "DROP SCHEMA IF EXISTS \(schema) CASCADE")
    try await whileRunning(client) {
        do {
            if !migrations.isEmpty {
                try await DatabaseMigrator(
                    client: client, schema: schema, migrations: migrations, logger: TestEnvironment.logger
                ).run()
            }
            try await body(client, schema)
        } catch {
            _ = try? await client.query(drop, logger: TestEnvironment.logger)
            throw error
        }
        try await client.query(drop, logger: TestEnvironment.logger)
    }
}
