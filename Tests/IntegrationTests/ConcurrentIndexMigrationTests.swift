import Foundation
import Logging
import PostgresNIO
import TestSupport
import Testing

@testable import MessengerPostgres

/// Index migrations built with `CREATE INDEX CONCURRENTLY` (``Migration/buildsIndexesConcurrently``).
@Suite("Index migrations built concurrently", .timeLimit(.minutes(1)))
struct ConcurrentIndexMigrationTests {
    static let table = Migration(
        version: 1, name: "things",
        statements: [
            "CREATE TABLE things (id bigint PRIMARY KEY, label text NOT NULL)",
            "INSERT INTO things SELECT n, 'label ' || (n % 100) FROM generate_series(1, 1000) AS n",
        ])

    static func index(_ statement: String, concurrently: Bool = true) -> Migration {
        Migration(version: 2, name: "things_index", statements: [statement], buildsIndexesConcurrently: concurrently)
    }

    func migrate(_ client: Database, _ schema: String, _ migrations: [Migration]) async throws -> [Int] {
        try await DatabaseMigrator(client: client, schema: schema, migrations: migrations, logger: TestEnvironment.logger).run()
    }

    /// Whether `index` exists in `schema`, and is valid.
    func validity(_ client: Database, _ schema: String, _ index: String) async throws -> Bool? {
        var valid: Bool?
        let rows = try await client.query(
            """
            SELECT i.indisvalid FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = \(schema) AND c.relname = \(index)
            """, logger: TestEnvironment.logger)
        for try await isValid in rows.decode(Bool.self) { valid = isValid }
        return valid
    }

    @Test("the statements are read as index builds, and anything else is not")
    func statements() {
        let plain = IndexStatement("CREATE INDEX things_label ON things (label)")
        #expect(plain?.name == "things_label")
        #expect(plain?.concurrently == "CREATE INDEX CONCURRENTLY IF NOT EXISTS things_label ON things (label)")
        #expect(
            IndexStatement("CREATE UNIQUE INDEX u ON things (lower(label))\n    WHERE id > 0")?.concurrently
                == "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u ON things (lower(label))\n    WHERE id > 0")
        // The name is found where it stands, not inside a keyword.
        #expect(
            IndexStatement("create index ind on things (label)")?.concurrently
                == "CREATE INDEX CONCURRENTLY IF NOT EXISTS ind on things (label)")
        #expect(IndexStatement("CREATE INDEX t_label ON things(label)")?.table == "things")
        // Upper case is folded by PostgreSQL: such a name would not be found as written.
        for other in [
            "CREATE TABLE x (id int)", "ALTER TABLE things ADD COLUMN x int", "CREATE INDEX ON things (label)", "",
            "CREATE INDEX Things_Label ON things (label)", "CREATE INDEX things_label ON Things (label)",
        ] {
            #expect(IndexStatement(other) == nil, "\(other)")
        }
    }

    @Test(
        "an index migration built concurrently is applied and recorded, and one applied in a transaction before counts as the same"
    )
    func appliedOnce() async throws {
        try await withFreshSchema("test_cic") { (client, schema) async throws in
            let statement = "CREATE INDEX things_label ON things (label)"
            #expect(try await self.migrate(client, schema, [Self.table, Self.index(statement)]) == [1, 2])
            #expect(try await self.validity(client, schema, "things_label") == true)
            #expect(try await self.migrate(client, schema, [Self.table, Self.index(statement)]) == [])
        }
        try await withFreshSchema("test_cic") { (client, schema) async throws in
            // Shipped as a migration in a transaction, then marked: its checksum is the same.
            let statement = "CREATE INDEX things_label ON things (label)"
            #expect(try await self.migrate(client, schema, [Self.table, Self.index(statement, concurrently: false)]) == [1, 2])
            #expect(try await self.migrate(client, schema, [Self.table, Self.index(statement)]) == [])
        }
    }

    @Test("an index a failed build left invalid is dropped and built again on the next start")
    func invalidLeftoverRebuilt() async throws {
        try await withFreshSchema("test_cic") { (client, schema) async throws in
            let unique = Self.index("CREATE UNIQUE INDEX things_label_unique ON things (label)")
            // The labels repeat: the build fails, and leaves an invalid index behind.
            await #expect {
                _ = try await self.migrate(client, schema, [Self.table, unique])
            } throws: { error in
                (error as? DatabaseError)?.code == .migrationFailed
            }
            #expect(try await self.validity(client, schema, "things_label_unique") == false)
            try await client.query("DELETE FROM things WHERE id > 100", logger: TestEnvironment.logger)
            #expect(try await self.migrate(client, schema, [Self.table, unique]) == [2])
            #expect(try await self.validity(client, schema, "things_label_unique") == true)
        }
    }

    @Test("a name taken by something else than an index of the table stops the migration, instead of being taken for the index")
    func nameTakenElsewhere() async throws {
        try await withFreshSchema("test_cic") { (client, schema) async throws in
            _ = try await self.migrate(client, schema, [Self.table])
            try await client.query("CREATE TABLE things_label (id int)", logger: TestEnvironment.logger)
            await #expect {
                _ = try await self.migrate(
                    client, schema, [Self.table, Self.index("CREATE INDEX things_label ON things (label)")])
            } throws: { error in
                (error as? DatabaseError)?.code == .migrationFailed
            }
        }
    }

    /// A transaction that wrote to the table is still open: the build waits for it, and
    /// meanwhile other writes go on. (`CREATE INDEX` in a transaction queued for its lock
    /// behind the open one, and every write after it queued behind the build.)
    @Test("writes go on while an index builds")
    func writesGoOn() async throws {
        try await withFreshSchema("test_cic") { (client, schema) async throws in
            _ = try await self.migrate(client, schema, [Self.table])
            let logger = TestEnvironment.logger
            try await client.withConnection { open in
                try await open.query("BEGIN", logger: logger)
                try await open.query("INSERT INTO things VALUES (5000, 'open')", logger: logger)
                async let building = self.migrate(
                    client, schema, [Self.table, Self.index("CREATE INDEX things_label ON things (label)")])
                // The build is under way, waiting for the open transaction.
                #expect(
                    await TestHelpers.eventually(timeout: .seconds(10)) {
                        var waiting = 0
                        let rows = try await client.query(
                            """
                            SELECT count(*)::int FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                            WHERE l.relation = 'things'::regclass AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted
                              AND a.wait_event_type = 'Lock'
                            """,
                            logger: logger)
                        for try await count in rows.decode(Int.self) { waiting = count }
                        return waiting == 1
                    })
                // Refused after 2 s if it waits behind the build; the open transaction ends
                // either way, so that the build ends too.
                let refused = try await client.withConnection { other in
                    try await other.query("SET statement_timeout = '2s'", logger: logger)
                    var refused: String?
                    do {
                        try await other.query("INSERT INTO things VALUES (5001, 'during the build')", logger: logger)
                    } catch {
                        refused = String(reflecting: error)
                    }
                    try await other.query("RESET statement_timeout", logger: logger)
                    return refused
                }
                try await open.query("COMMIT", logger: logger)
                #expect(try await building == [2])
                #expect(refused == nil, "a write waited for the build: \(refused ?? "")")
            }
            #expect(try await self.validity(client, schema, "things_label") == true)
        }
    }
}
