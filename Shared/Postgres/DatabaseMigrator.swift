import Logging
import PostgresNIO
import ThreadedIO

/// One forward-only schema change: statements run in order in one transaction; unqualified
/// names land in the service's schema. Never edit a migration once shipped: add a new one.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    /// One SQL statement each (the extended protocol takes one statement per query).
    public var statements: [String]
    /// Whether the statements are `CREATE [UNIQUE] INDEX <name> ON ...` on tables that hold
    /// rows already, built without holding writes: each runs as `CREATE INDEX CONCURRENTLY`,
    /// outside a transaction (``DatabaseMigrator``). Not part of the checksum: a shipped index
    /// migration can be marked so.
    public var buildsIndexesConcurrently: Bool

    public init(version: Int, name: String, statements: [String], buildsIndexesConcurrently: Bool = false) {
        self.version = version
        self.name = name
        self.statements = statements
        self.buildsIndexesConcurrently = buildsIndexesConcurrently
    }

    /// Whether a statement removes, renames or narrows something (`DROP`, `RENAME`, a column's
    /// `TYPE` changed or `SET NOT NULL`): what the replicas of the version before may still use
    /// during a rolling upgrade, and what a rollback needs. Such a change ships in a release after
    /// the one whose code stopped using it (docs/foundation.md, "Upgrading a running system");
    /// each service's tests list the few shipped before that rule.
    public var contractsTheSchema: Bool {
        self.statements.contains { statement in
            let words = statement.uppercased().split { !($0.isLetter || $0 == "_") }
            func has(_ sequence: [Substring]) -> Bool {
                words.indices.contains { start in words[start...].starts(with: sequence) }
            }
            return words.contains("DROP") || words.contains("RENAME") || has(["SET", "NOT", "NULL"])
                || (has(["ALTER", "COLUMN"]) && words.contains("TYPE"))
        }
    }

    /// FNV-1a of the statements, stored to notice a shipped migration that was edited.
    var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in self.statements.joined(separator: ";\n").utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Applies a service's migrations in order, each in its own transaction, under a PostgreSQL
/// advisory lock so that replicas starting together apply each migration exactly once.
///
/// An index migration (``Migration/buildsIndexesConcurrently``) builds each index with
/// `CREATE INDEX CONCURRENTLY IF NOT EXISTS`, outside a transaction: writes to the table go on
/// while it builds (until the forty-eighth session an index on a table of a few million rows
/// held them for seconds). An index a failed or interrupted build left invalid is dropped and
/// built again, and the migration is recorded once every index is valid. Replicas wait for the
/// lock by trying it again every ``lockRetry``: one waiting in `pg_advisory_lock` holds a
/// snapshot, which a concurrent build waits for, and the two would deadlock. A replica whose
/// migrations are all recorded (an older version's, during a rolling upgrade) starts without
/// the lock: until the sixty-second session it waited for a newer replica's long steps.
///
/// A migration's statements wait at most ``tableLockWait`` for each lock: PostgreSQL queues
/// every later statement on a table behind a lock that waits for it, so an `ALTER TABLE` behind
/// a long transaction (a dump, a session left open) stopped every replica's work on the table
/// for as long (a review in the sixty-second session). The migration is rolled back and tried
/// again, paced by a backoff from 1 to 30 s, for as long as it takes; the replica is not ready
/// meanwhile, and the others serve.
public struct DatabaseMigrator: Sendable {
    /// How often a replica tries the migrations' lock while another holds it.
    static let lockRetry: Duration = .milliseconds(200)

    private let client: Database
    private let schema: String
    private let migrations: [Migration]
    private let tableLockWait: Duration
    private let tableLockBackoff: Backoff
    private let logger: Logger

    public init(
        client: Database, schema: String, migrations: [Migration], tableLockWait: Duration = .milliseconds(500),
        tableLockBackoff: Backoff = Backoff(initial: .seconds(1), maximum: .seconds(30)), logger: Logger
    ) {
        self.client = client
        self.schema = schema
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.tableLockWait = tableLockWait
        self.tableLockBackoff = tableLockBackoff
        self.logger = logger
    }

    /// Applies what is missing and returns the versions applied by this call.
    @discardableResult
    public func run() async throws -> [Int] {
        try SQLIdentifier.validate(self.schema)
        let schema = SQLIdentifier.quoted(self.schema)
        let lockKey = Self.lockKey(for: self.schema)
        return try await self.client.withConnection { connection in
            if try await self.isUpToDate(connection, schema: schema) { return [] }
            // A pool's `lock_timeout` (DatabaseConfiguration.lockTimeout) is lifted here: the
            // advisory lock waits for another replica's migrations (each migration sets its own,
            // ``tableLockWait``). A `statement_timeout` set for the role would fail a long step.
            // The pool's settings come back before the connection does.
            try await connection.query("SET lock_timeout = 0", logger: self.logger)
            try await connection.query("SET statement_timeout = 0", logger: self.logger)
            do {
                // Tried again and again rather than waited for in `pg_advisory_lock`, whose
                // snapshot a concurrent index build would wait for (see the type's comment).
                while true {
                    var locked = false
                    let rows = try await connection.query("SELECT pg_try_advisory_lock(\(lockKey))", logger: self.logger)
                    for try await granted in rows.decode(Bool.self) { locked = granted }
                    if locked { break }
                    try await Task.sleep(for: Self.lockRetry)
                }
                let applied: [Int]
                do {
                    applied = try await self.migrate(connection, schema: schema)
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: self.logger).collect()
                    throw error
                }
                _ = try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: self.logger).collect()
                try await connection.query("RESET lock_timeout", logger: self.logger)
                try await connection.query("RESET statement_timeout", logger: self.logger)
                return applied
            } catch {
                _ = try? await connection.query("RESET lock_timeout", logger: self.logger)
                _ = try? await connection.query("RESET statement_timeout", logger: self.logger)
                throw error
            }
        }
    }

    private func migrate(_ connection: PostgresConnection, schema: String) async throws -> [Int] {
        try await connection.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: self.logger)
        try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    CREATE TABLE IF NOT EXISTS \(schema).schema_migrations (
                        version integer PRIMARY KEY,
                        name text NOT NULL,
                        checksum text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now()
                    )
                    """), logger: self.logger)

        let known = try await self.recorded(connection, schema: schema)
        var applied: [Int] = []
        for migration in self.migrations {
            if let checksum = known[migration.version] {
                guard checksum == migration.checksum else {
                    throw DatabaseError(
                        .migrationChanged,
                        "migration \(migration.version) (\(migration.name)) of \(self.schema) was edited after it was applied")
                }
                continue
            }
            var binds = PostgresBindings()
            binds.append(migration.version)
            binds.append(migration.name)
            binds.append(migration.checksum)
            let record = PostgresQuery(
                unsafeSQL: "INSERT INTO \(schema).schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", binds: binds)
            if migration.buildsIndexesConcurrently {
                try await self.buildIndexes(of: migration, on: connection, schema: schema)
                try await connection.query(record, logger: self.logger)
                self.logger.info(
                    "applied migration",
                    metadata: ["schema": "\(self.schema)", "version": "\(migration.version)", "name": "\(migration.name)"])
                applied.append(migration.version)
                continue
            }
            do {
                try await self.apply(migration, recordedBy: record, on: connection, schema: schema)
            } catch let error as PostgresTransactionError {
                // The server refused a statement: retrying will not help. Anything else (a lost
                // connection; a restart, a failover or a deadlock, as for the indexes below) is
                // thrown as it is and may be retried: until the fifty-third session those stopped
                // the service for good (a review).
                if let serverError = (error.closureError ?? error.commitError) as? PSQLError, serverError.serverInfo != nil,
                    !Database.isRetryable(serverError)
                {
                    throw DatabaseError(
                        .migrationFailed,
                        "migration \(migration.version) (\(migration.name)) of \(self.schema) failed: \(serverError.serverInfo?[.message] ?? "")"
                    )
                }
                throw error
            }
            self.logger.info(
                "applied migration",
                metadata: ["schema": "\(self.schema)", "version": "\(migration.version)", "name": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }

    /// Every version recorded, and none edited: nothing to do, and no lock to wait for.
    private func isUpToDate(_ connection: PostgresConnection, schema: String) async throws -> Bool {
        var exists = false
        let table = "\(schema).schema_migrations"
        for try await found in try await connection.query("SELECT to_regclass(\(table)) IS NOT NULL", logger: self.logger)
            .decode(Bool.self)
        { exists = found }
        guard exists else { return false }
        let known = try await self.recorded(connection, schema: schema)
        return self.migrations.allSatisfy { known[$0.version] == $0.checksum }
    }

    /// The versions `schema_migrations` records, with their checksums.
    private func recorded(_ connection: PostgresConnection, schema: String) async throws -> [Int: String] {
        var known: [Int: String] = [:]
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT version, checksum FROM \(schema).schema_migrations"), logger: self.logger)
        for try await (version, checksum) in rows.decode((Int, String).self) {
            known[version] = checksum
        }
        return known
    }

    /// Runs `migration`'s statements and `record` in one transaction whose locks wait at most
    /// ``tableLockWait`` each; one not granted in time rolls it back, and it is tried again after
    /// a pause (see the type's comment).
    private func apply(
        _ migration: Migration, recordedBy record: PostgresQuery, on connection: PostgresConnection, schema: String
    ) async throws {
        let lockWait = DatabaseConfiguration.milliseconds(self.tableLockWait)
        var backoff = self.tableLockBackoff
        while true {
            do {
                try await connection.withTransaction(logger: self.logger) { transaction in
                    try await transaction.query(
                        PostgresQuery(unsafeSQL: "SET LOCAL lock_timeout = \(lockWait)"), logger: self.logger)
                    try await transaction.query(
                        PostgresQuery(unsafeSQL: "SET LOCAL search_path TO \(schema)"), logger: self.logger)
                    for statement in migration.statements {
                        try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                    }
                    try await transaction.query(record, logger: self.logger)
                }
                return
            } catch let error as PostgresTransactionError where Database.isLockTimeout(error) {
                let pause = backoff.next()
                self.logger.warning(
                    "migration waits for a lock another session holds; trying again",
                    metadata: [
                        "schema": "\(self.schema)", "version": "\(migration.version)", "name": "\(migration.name)",
                        "retryInMs": "\(Backoff.milliseconds(pause))",
                    ])
                try await Task.sleep(for: pause)
            }
        }
    }

    /// Builds the indexes of `migration` one by one with `CREATE INDEX CONCURRENTLY`, in
    /// `schema` (quoted), each after dropping one of its name that an earlier build left invalid.
    private func buildIndexes(of migration: Migration, on connection: PostgresConnection, schema: String) async throws {
        for statement in migration.statements {
            guard let index = IndexStatement(statement) else {
                throw DatabaseError(
                    .migrationFailed,
                    "migration \(migration.version) (\(migration.name)) of \(self.schema) builds indexes concurrently, "
                        + "and this is not CREATE [UNIQUE] INDEX <name> ON ...: \(statement)")
            }
            do {
                // What already has the name: nothing, or an index of this table (`IF NOT EXISTS`
                // would take anything of the name for the index, and record it).
                var existing: (kind: String, table: String, valid: Bool)?
                let rows = try await connection.query(
                    """
                    SELECT c.relkind::text, coalesce(t.relname::text, ''), coalesce(i.indisvalid, false)
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid
                    WHERE n.nspname = \(self.schema) AND c.relname = \(index.name)
                    """, logger: self.logger)
                for try await row in rows.decode((String, String, Bool).self) { existing = row }
                if let existing, existing.kind != "i" || existing.table != index.table {
                    throw DatabaseError(
                        .migrationFailed,
                        "migration \(migration.version) (\(migration.name)) of \(self.schema): \(index.name) exists already, "
                            + "and is not an index of \(index.table)")
                }
                if existing?.valid == false {
                    self.logger.warning(
                        "dropping an index an earlier build left invalid",
                        metadata: ["schema": "\(self.schema)", "index": "\(index.name)"])
                    try await connection.query(
                        PostgresQuery(unsafeSQL: "DROP INDEX CONCURRENTLY IF EXISTS \(schema).\(index.name)"), logger: self.logger
                    )
                }
                // The table is named in the statement without its schema: the session's
                // search path finds it, and is set back before the connection goes back.
                try await connection.query(PostgresQuery(unsafeSQL: "SET search_path TO \(schema)"), logger: self.logger)
                do {
                    try await connection.query(PostgresQuery(unsafeSQL: index.concurrently), logger: self.logger)
                } catch {
                    _ = try? await connection.query("RESET search_path", logger: self.logger)
                    throw error
                }
                try await connection.query("RESET search_path", logger: self.logger)
            } catch let error as PSQLError where error.serverInfo != nil && !Database.isRetryable(error) {
                // A restart, a failover or a deadlock is thrown as it is, and the next start
                // tries again (an invalid leftover is dropped then).
                throw DatabaseError(
                    .migrationFailed,
                    "migration \(migration.version) (\(migration.name)) of \(self.schema) failed: \(error.serverInfo?[.message] ?? "")"
                )
            }
        }
    }

    /// A stable 63-bit key per schema for `pg_advisory_lock`.
    public static func lockKey(for schema: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "messenger.migrations.\(schema)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int64(bitPattern: hash & 0x7fff_ffff_ffff_ffff)
    }
}

/// `CREATE [UNIQUE] INDEX <name> ON <table> ...`, read to be run concurrently. The name and the
/// table are lower case, as PostgreSQL folds unquoted names, so that they are found as written.
struct IndexStatement: Equatable {
    /// The index's name.
    var name: String
    /// The table's name.
    var table: String
    /// The statement as `CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <name> ON ...`.
    var concurrently: String

    init?(_ statement: String) {
        let words = statement.split(whereSeparator: \.isWhitespace)
        let unique = words.count > 1 && words[1].uppercased() == "UNIQUE"
        let nameAt = unique ? 3 : 2
        guard words.count > nameAt + 1, words[0].uppercased() == "CREATE", words[nameAt - 1].uppercased() == "INDEX",
            words[nameAt + 1].uppercased() == "ON"
        else { return nil }
        func isName(_ text: some StringProtocol) -> Bool {
            !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }
        }
        let name = String(words[nameAt])
        guard isName(name), words.count > nameAt + 2 else { return nil }
        let table = words[nameAt + 2].prefix { $0 != "(" }
        guard isName(table) else { return nil }
        self.name = name
        self.table = String(table)
        // The rest as written, after the name (the words are slices of the statement).
        self.concurrently =
            "CREATE \(unique ? "UNIQUE " : "")INDEX CONCURRENTLY IF NOT EXISTS \(name)\(statement[words[nameAt].endIndex...])"
    }
}
