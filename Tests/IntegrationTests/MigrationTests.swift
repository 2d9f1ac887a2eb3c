import Foundation
import Logging
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing

@Suite("Database migrations", .timeLimit(.minutes(1)))
struct MigrationTests {
    static let migrations = [
        Migration(
            version: 1, name: "things",
            statements: ["SELECT pg_sleep(0.3)", "CREATE TABLE things (id bigint PRIMARY KEY, label text NOT NULL)"]),
        Migration(version: 2, name: "things_label", statements: ["CREATE INDEX things_label ON things (label)"]),
    ]

    /// A running client for a fresh schema, dropped afterwards.
    func withDatabase(_ body: (Database, String) async throws -> Void) async throws {
        try await withFreshSchema("test_migrations", body)
    }

    /// The test's migrations for `schema`, run through `client`.
    func migrator(_ client: Database, _ schema: String) -> DatabaseMigrator {
        DatabaseMigrator(client: client, schema: schema, migrations: Self.migrations, logger: TestEnvironment.logger)
    }

    func appliedVersions(_ client: Database, _ schema: String) async throws -> [Int] {
        var versions: [Int] = []
        let rows = try await client.query(
            PostgresQuery(unsafeSQL: "SELECT version FROM \(schema).schema_migrations ORDER BY version"),
            logger: TestEnvironment.logger)
        for try await version in rows.decode(Int.self) { versions.append(version) }
        return versions
    }

    @Test("migrations apply in order once; a second run applies nothing")
    func idempotent() async throws {
        try await self.withDatabase { client, schema in
            let migrator = self.migrator(client, schema)
            #expect(try await migrator.run() == [1, 2])
            #expect(try await migrator.run() == [])
            #expect(try await self.appliedVersions(client, schema) == [1, 2])
            try await client.query(
                PostgresQuery(unsafeSQL: "INSERT INTO \(schema).things (id, label) VALUES (1, 'ok')"),
                logger: TestEnvironment.logger)
        }
    }

    @Test("two replicas migrating at once apply each migration exactly once")
    func concurrentRunners() async throws {
        try await self.withDatabase { client, schema in
            let otherClient = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: schema).makeDatabase(
                logger: TestEnvironment.logger)
            try await whileRunning(otherClient) {
                let first = self.migrator(client, schema)
                let second = self.migrator(otherClient, schema)
                async let a = first.run()
                async let b = second.run()
                let applied = try await a + b
                #expect(applied.sorted() == [1, 2])
            }
            #expect(try await self.appliedVersions(client, schema) == [1, 2])
        }
    }

    /// Messaging's pool sets `lock_timeout` on every connection (`boundsLockWaits`); the
    /// migrator lifts it for its session, so a replica that starts while another migrates waits
    /// for it, and gives the setting back with the connection.
    @Test("with a pool's lock_timeout, a replica migrating behind another waits, and the pool keeps its setting")
    func lockTimeoutPool() async throws {
        try await self.withDatabase { client, schema in
            var configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: schema)
            configuration.lockTimeout = .milliseconds(100)
            configuration.maximumConnections = 1  // the SHOW below runs on the migrator's connection
            let bounded = configuration.makeDatabase(logger: TestEnvironment.logger)
            try await whileRunning(bounded) {
                let first = self.migrator(client, schema)
                let second = self.migrator(bounded, schema)
                // The first holds the migrations' lock for 0.3 s (its pg_sleep), past the 100 ms.
                async let a = first.run()
                try await Task.sleep(for: .milliseconds(50))
                async let b = second.run()
                let applied = try await a + b
                #expect(applied.sorted() == [1, 2])
                var settings: [String] = []
                for try await value in try await bounded.query("SHOW lock_timeout", logger: TestEnvironment.logger)
                    .decode(String.self)
                { settings.append(value) }
                #expect(settings == ["100ms"])
            }
        }
    }

    @Test("a migration edited after it was applied stops the start")
    func editedMigration() async throws {
        try await self.withDatabase { client, schema in
            try await DatabaseMigrator(
                client: client, schema: schema, migrations: Self.migrations, logger: TestEnvironment.logger
            ).run()
            var edited = Self.migrations
            edited[1].statements = ["CREATE INDEX things_label ON things (label, id)"]
            await #expect {
                try await DatabaseMigrator(client: client, schema: schema, migrations: edited, logger: TestEnvironment.logger)
                    .run()
            } throws: { error in
                (error as? DatabaseError)?.code == .migrationChanged
            }
        }
    }

    @Test("a failing migration leaves nothing half-applied")
    func failingMigration() async throws {
        try await self.withDatabase { client, schema in
            let broken = [
                Self.migrations[0],
                Migration(
                    version: 2, name: "broken", statements: ["CREATE TABLE half (id int)", "CREATE INDEX nope ON missing (x)"]),
            ]
            await #expect {
                try await DatabaseMigrator(client: client, schema: schema, migrations: broken, logger: TestEnvironment.logger)
                    .run()
            } throws: { error in
                (error as? DatabaseError)?.code == .migrationFailed
            }
            #expect(try await self.appliedVersions(client, schema) == [1])
            let rows = try await client.query(
                PostgresQuery(
                    unsafeSQL:
                        "SELECT count(*) FROM information_schema.tables WHERE table_schema = '\(schema)' AND table_name = 'half'"),
                logger: TestEnvironment.logger)
            for try await count in rows.decode(Int.self) { #expect(count == 0) }
        }
    }

    /// Until the fifty-third session any error the server sent stopped the service for good,
    /// a restart's, a failover's or a deadlock's too (a review).
    @Test("a migration that meets a passing server error is thrown as it is, to be tried again, and then applies")
    func passingServerError() async throws {
        try await self.withDatabase { client, schema in
            let passing = [
                Self.migrations[0],
                Migration(
                    version: 2, name: "unlucky",
                    statements: ["CREATE TABLE half (id int)", "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001'; END $$"]),
            ]
            var thrown: (any Error)?
            do {
                _ = try await DatabaseMigrator(
                    client: client, schema: schema, migrations: passing, logger: TestEnvironment.logger
                ).run()
            } catch {
                thrown = error
            }
            let error = try #require(thrown)
            #expect((error as? DatabaseError)?.code != .migrationFailed)
            #expect(Database.isRetryable(error))
            let applied = try await self.appliedVersions(client, schema)
            #expect(applied == [1])
        }
    }
}
