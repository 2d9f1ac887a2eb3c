import Logging
import PostgresNIO

/// One forward-only schema change: statements run in order in one transaction; unqualified
/// names land in the service's schema. Never edit a migration once shipped: add a new one.
public struct Migration: Sendable {
    public var version: Int
    public var name: String
    /// One SQL statement each (the extended protocol takes one statement per query).
    public var statements: [String]

    public init(version: Int, name: String, statements: [String]) {
        self.version = version
        self.name = name
        self.statements = statements
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
public struct DatabaseMigrator: Sendable {
    private let client: Database
    private let schema: String
    private let migrations: [Migration]
    private let logger: Logger

    public init(client: Database, schema: String, migrations: [Migration], logger: Logger) {
        self.client = client
        self.schema = schema
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// Applies what is missing and returns the versions applied by this call.
    @discardableResult
    public func run() async throws -> [Int] {
        try SQLIdentifier.validate(self.schema)
        let schema = SQLIdentifier.quoted(self.schema)
        let lockKey = Self.lockKey(for: self.schema)
        return try await self.client.withConnection { connection in
            // A pool's `lock_timeout` (DatabaseConfiguration.lockTimeout) is lifted here: the
            // advisory lock waits for another replica's migrations, and DDL for every transaction
            // on its table. The pool's setting comes back before the connection does.
            try await connection.query("SET lock_timeout = 0", logger: self.logger)
            do {
                // Read to the end: postgres-nio returns at the row description, before the lock
                // is granted, and an error of the wait would come after it, unread.
                _ = try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: self.logger).collect()
                let applied: [Int]
                do {
                    applied = try await self.migrate(connection, schema: schema)
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: self.logger).collect()
                    throw error
                }
                _ = try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: self.logger).collect()
                try await connection.query("RESET lock_timeout", logger: self.logger)
                return applied
            } catch {
                _ = try? await connection.query("RESET lock_timeout", logger: self.logger)
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

        var known: [Int: String] = [:]
        let rows = try await connection.query(
            PostgresQuery(unsafeSQL: "SELECT version, checksum FROM \(schema).schema_migrations"), logger: self.logger)
        for try await (version, checksum) in rows.decode((Int, String).self) {
            known[version] = checksum
        }

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
            do {
                try await connection.withTransaction(logger: self.logger) { transaction in
                    try await transaction.query(
                        PostgresQuery(unsafeSQL: "SET LOCAL search_path TO \(schema)"), logger: self.logger)
                    for statement in migration.statements {
                        try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                    }
                    try await transaction.query(record, logger: self.logger)
                }
            } catch let error as PostgresTransactionError {
                // The server refused a statement: retrying will not help. Anything else (a lost
                // connection) is thrown as it is and may be retried.
                if let serverError = (error.closureError ?? error.commitError) as? PSQLError, serverError.serverInfo != nil {
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
