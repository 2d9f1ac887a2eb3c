import Foundation
import Logging
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing
import ThreadedIO

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

    /// Holds `sql`'s locks on a connection of its own, in a transaction left open, until
    /// `release` yields; `held` yields once they are taken.
    func holding(
        _ sql: String, _ client: Database, held: AsyncStream<Void>.Continuation, release: AsyncStream<Void>
    ) async throws {
        try await client.withConnection { connection in
            try await connection.query("BEGIN", logger: TestEnvironment.logger)
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestEnvironment.logger)
            held.yield()
            for await _ in release { break }
            try await connection.query("COMMIT", logger: TestEnvironment.logger)
        }
    }

    /// PostgreSQL queues every later statement on a table behind a lock that waits for it: until
    /// the sixty-second session a migration's `ALTER TABLE` behind an open transaction stopped
    /// every replica's reads and writes of the table for as long as that transaction lasted.
    @Test("a migration waiting for a table another session holds gives way to the table's users, and applies once it is free")
    func tableLockWait() async throws {
        try await self.withDatabase { client, schema in
            try await self.migrator(client, schema).run()
            let added =
                Self.migrations + [
                    Migration(version: 3, name: "things_note", statements: ["ALTER TABLE things ADD COLUMN note text"])
                ]
            let (isHeld, held) = AsyncStream.makeStream(of: Void.self)
            let (released, release) = AsyncStream.makeStream(of: Void.self)
            // The reader waits for a lock up to 10 s: behind a migration that waits for good,
            // its read fails.
            var configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: schema)
            configuration.lockTimeout = .seconds(10)
            let reader = configuration.makeDatabase(logger: TestEnvironment.logger)
            try await whileRunning(reader) {
                try await withThrowingTaskGroup(of: [Int].self) { group in
                    group.addTask {
                        try await self.holding("SELECT count(*) FROM \(schema).things", client, held: held, release: released)
                        return []
                    }
                    for await _ in isHeld { break }
                    group.addTask {
                        try await DatabaseMigrator(
                            client: client, schema: schema, migrations: added, tableLockWait: .milliseconds(200),
                            tableLockBackoff: Backoff(initial: .milliseconds(300), maximum: .milliseconds(600)),
                            logger: TestEnvironment.logger
                        ).run()
                    }
                    // The migration's ALTER is seen waiting for the holder's lock.
                    while true {
                        var waiting = 0
                        for try await count in try await client.query(
                            """
                            SELECT count(*)::int FROM pg_stat_activity
                            WHERE datname = current_database() AND wait_event_type = 'Lock'
                              AND query = 'ALTER TABLE things ADD COLUMN note text'
                            """, logger: TestEnvironment.logger
                        ).decode(Int.self) { waiting = count }
                        if waiting > 0 { break }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    var counted: [Int] = []
                    for try await count in try await reader.query(
                        PostgresQuery(unsafeSQL: "SELECT count(*)::int FROM \(schema).things"), logger: TestEnvironment.logger
                    ).decode(Int.self) { counted.append(count) }
                    #expect(counted == [0])
                    release.yield()
                    var applied: [Int] = []
                    for try await versions in group { applied += versions }
                    #expect(applied == [3])
                }
            }
            #expect(try await self.appliedVersions(client, schema) == [1, 2, 3])
        }
    }

    /// During a rolling upgrade a newer replica may hold the migrations' lock for a long step (an
    /// index built concurrently, a table rewritten): a replica of the version before it, whose
    /// migrations are all there, waited for it until the sixty-second session.
    @Test("a replica whose migrations are all applied starts while another holds the migrations' lock")
    func upToDateWithoutLock() async throws {
        try await self.withDatabase { client, schema in
            try await self.migrator(client, schema).run()
            let (isHeld, held) = AsyncStream.makeStream(of: Void.self)
            let (released, release) = AsyncStream.makeStream(of: Void.self)
            let key = DatabaseMigrator.lockKey(for: schema)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await self.holding("SELECT pg_advisory_xact_lock(\(key))", client, held: held, release: released)
                }
                for await _ in isHeld { break }
                let applied = try await withTimeout(.seconds(20)) { try await self.migrator(client, schema).run() }
                #expect(applied == [])
                // One with a migration to apply waits for the lock, and applies it once it is free.
                let added =
                    Self.migrations + [
                        Migration(version: 3, name: "things_note", statements: ["ALTER TABLE things ADD COLUMN note text"])
                    ]
                group.addTask {
                    let applied = try await DatabaseMigrator(
                        client: client, schema: schema, migrations: added, logger: TestEnvironment.logger
                    ).run()
                    #expect(applied == [3])
                }
                try await Task.sleep(for: .milliseconds(500))
                #expect(try await self.appliedVersions(client, schema) == [1, 2])
                release.yield()
                try await group.waitForAll()
            }
            #expect(try await self.appliedVersions(client, schema) == [1, 2, 3])
        }
    }
}
