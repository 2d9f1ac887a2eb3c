import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// A stored user, password hash included. Never leaves the auth service as is.
struct UserRecord: Sendable {
    var id: UUID
    var username: String
    var email: String
    var displayName: String
    var passwordHash: String
    var createdAt: Date

    /// The contract's `User`; `email` only for the user themself.
    func resource(includingEmail: Bool) -> User {
        User(
            id: EntityID(self.id), username: self.username, displayName: self.displayName, createdAt: self.createdAt,
            email: includingEmail ? self.email : nil)
    }
}

/// Users in auth's schema.
protocol UserRepository: Sendable {
    /// Throws `conflict` when the username or email is taken, and `unavailable` without
    /// writing anything when `deadline` is too close to commit (``CommitDeadline``).
    func create(_ user: UserRecord, before deadline: ContinuousClock.Instant?) async throws
    /// Throws `conflict`, as ``create(_:before:)`` would, when the username or email is taken:
    /// a registration asks before it hashes the password.
    func ensureFree(username: String, email: String) async throws
    /// By username or email, case-insensitively.
    func find(login: String) async throws -> UserRecord?
    func find(id: UUID) async throws -> UserRecord?
    func updateDisplayName(id: UUID, displayName: String) async throws -> UserRecord?
    /// Sets a new password hash and revokes every refresh token of the user, atomically. Every
    /// login session but `sparing` (the one that asks) ends at once; that one's access tokens
    /// stay valid until they expire. Throws `unavailable` without changing anything when
    /// `deadline` is too close to commit (``CommitDeadline``).
    func updatePassword(
        id: UUID, replacing checkedHash: String, with passwordHash: String, displayName: String?, sparing: UUID?,
        before deadline: ContinuousClock.Instant?
    ) async throws -> UserRecord?
    /// The same password hashed anew (another cost or form): replaces `checkedHash` if it is
    /// still the stored one, and ends no session.
    func rehashPassword(id: UUID, replacing checkedHash: String, with passwordHash: String) async throws
    /// Users whose username or display name starts with `prefix` (case-insensitive).
    func search(prefix: String, limit: Int) async throws -> [UserRecord]
    /// Those of `ids` that exist.
    func find(ids: [UUID]) async throws -> [UserRecord]
}

/// Every change of a user's public data writes `auth.user_created.v1` / `auth.user_updated.v1`
/// to auth's outbox in the same transaction, for the read models of other services.
struct PostgresUserRepository: UserRepository {
    let client: Database
    let outbox: OutboxSignal
    let revocations: SessionRevocations
    let logger: Logger

    private static let columns = "id, username, email, display_name, password_hash, created_at"
    private typealias Row = (UUID, String, String, String, String, Date)

    private static func record(_ row: Row) -> UserRecord {
        UserRecord(id: row.0, username: row.1, email: row.2, displayName: row.3, passwordHash: row.4, createdAt: row.5)
    }

    /// A taken username or email is found by the insert itself (`ON CONFLICT DO NOTHING`), not
    /// by a unique violation: each violation wrote an ERROR line to PostgreSQL's log, with the
    /// taken address in its DETAIL (personal data in the server's log, an outside tester found).
    ///
    /// A connection lost before the `COMMIT`'s answer came leaves the outcome unknown: the
    /// account is then looked for (``createdAccount(_:)``), and one that was created is
    /// answered as created. Answered 503, the client's retry found its own name taken (until
    /// the fifty-fifth session; a review).
    func create(_ user: UserRecord, before deadline: ContinuousClock.Instant?) async throws {
        do {
            try await self.insert(user, before: deadline)
        } catch  where Database.mayHaveCommitted(error) {
            guard (try? await Database.lookingUpLostCommit({ try await self.createdAccount(user) })) == true else {
                throw error
            }
            self.logger.notice("a registration whose commit went unanswered had committed; answered as created")
        }
        self.outbox.wake()
    }

    /// Whether `user`'s row was stored. A plain read would not see an insert whose commit is
    /// still under way on the lost connection: the same insert is tried in a transaction rolled
    /// back, where it waits for that one's outcome on the unique indexes, and then the row is read.
    private func createdAccount(_ user: UserRecord) async throws -> Bool {
        let logger = self.logger
        do {
            return try await self.client.transaction(logger: logger) { connection -> Bool in
                // Inserted now: it was not stored before.
                for try await _ in try await connection.query(
                    """
                    INSERT INTO users (id, username, email, display_name, password_hash, created_at, updated_at)
                    VALUES (\(user.id), \(user.username), \(user.email), \(user.displayName), \(user.passwordHash), \(user.createdAt), \(user.createdAt))
                    ON CONFLICT DO NOTHING RETURNING id
                    """, logger: logger
                ).decode(UUID.self) {
                    throw LookedUp(stored: false)
                }
                // A row holds the id, or the name or the address (another account's, taken since).
                var stored = false
                for try await _ in try await connection.query("SELECT id FROM users WHERE id = \(user.id)", logger: logger)
                    .decode(UUID.self)
                {
                    stored = true
                }
                throw LookedUp(stored: stored)
            }
        } catch let looked as LookedUp {
            return looked.stored
        }
    }

    /// Ends a look's transaction with a rollback, carrying what it found.
    private struct LookedUp: Error {
        var stored: Bool
    }

    private func insert(_ user: UserRecord, before deadline: ContinuousClock.Instant?) async throws {
        try await self.client.transaction(logger: self.logger) { connection in
            let inserted = try await connection.query(
                """
                INSERT INTO users (id, username, email, display_name, password_hash, created_at, updated_at)
                VALUES (\(user.id), \(user.username), \(user.email), \(user.displayName), \(user.passwordHash), \(user.createdAt), \(user.createdAt))
                ON CONFLICT DO NOTHING RETURNING id
                """, logger: self.logger)
            var created = false
            for try await _ in inserted.decode(UUID.self) { created = true }
            guard created else {
                throw try await Self.taken(username: user.username, email: user.email, on: connection, logger: self.logger)
                    ?? ServiceError.conflict("username is already taken")
            }
            try await self.announce(AuthMessage.userCreated, user, on: connection)
            try CommitDeadline.ensureTimeLeft(before: deadline)
        }
    }

    func ensureFree(username: String, email: String) async throws {
        let conflict = try await self.client.withConnection { connection in
            try await Self.taken(username: username, email: email, on: connection, logger: self.logger)
        }
        if let conflict { throw conflict }
    }

    /// The `conflict` for a taken username (first) or email; nil when both are free.
    private static func taken(
        username: String, email: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> ServiceError? {
        let rows = try await connection.query(
            """
            SELECT bool_or(lower(username) = lower(\(username))) FROM users
            WHERE lower(username) = lower(\(username)) OR lower(email) = lower(\(email))
            """, logger: logger)
        for try await usernameTaken in rows.decode(Bool?.self) {
            guard let usernameTaken else { return nil }  // no row matched
            return ServiceError.conflict(usernameTaken ? "username is already taken" : "email is already taken")
        }
        return nil
    }

    func find(login: String) async throws -> UserRecord? {
        let normalized = login.lowercased()
        let rows = try await self.client.query(
            "SELECT \(unescaped: Self.columns) FROM users WHERE lower(username) = \(normalized) OR lower(email) = \(normalized) LIMIT 1",
            logger: self.logger)
        for try await row in rows.decode(Row.self) { return Self.record(row) }
        return nil
    }

    func find(id: UUID) async throws -> UserRecord? {
        let rows = try await self.client.query(
            "SELECT \(unescaped: Self.columns) FROM users WHERE id = \(id)", logger: self.logger)
        for try await row in rows.decode(Row.self) { return Self.record(row) }
        return nil
    }

    /// ``find(id:)`` in a transaction of another store's (a refresh's rotation).
    static func find(id: UUID, on connection: PostgresConnection, logger: Logger) async throws -> UserRecord? {
        let rows = try await connection.query("SELECT \(unescaped: Self.columns) FROM users WHERE id = \(id)", logger: logger)
        for try await row in rows.decode(Row.self) { return Self.record(row) }
        return nil
    }

    func updateDisplayName(id: UUID, displayName: String) async throws -> UserRecord? {
        let updated = try await self.client.transaction(logger: self.logger) { connection -> UserRecord? in
            let rows = try await connection.query(
                "UPDATE users SET display_name = \(displayName), updated_at = now() WHERE id = \(id) RETURNING \(unescaped: Self.columns)",
                logger: self.logger)
            var updated: UserRecord?
            for try await row in rows.decode(Row.self) { updated = Self.record(row) }
            if let updated { try await self.announce(AuthMessage.userUpdated, updated, on: connection) }
            return updated
        }
        self.outbox.wake()
        return updated
    }

    func rehashPassword(id: UUID, replacing checkedHash: String, with passwordHash: String) async throws {
        try await self.client.write(
            "UPDATE users SET password_hash = \(passwordHash) WHERE id = \(id) AND password_hash = \(checkedHash)",
            logger: self.logger)
    }

    /// Replaces the password whose hash is still `checkedHash` (the one the caller's
    /// `currentPassword` was checked against); nil, with nothing changed, when it is not (another
    /// change committed meanwhile: until the fortieth session both changes succeeded, and the
    /// later silently replaced the password the earlier one's caller had just set).
    ///
    /// A connection lost before the `COMMIT`'s answer came leaves the outcome unknown: the user
    /// is then looked for with the new hash (a bcrypt hash's salt makes it this change's own),
    /// and a change that committed is answered as made. Answered 503, the client's retry
    /// checked its `currentPassword` against the new hash: a 403, counted as a failed login
    /// (until the fifty-fifth session; a review).
    func updatePassword(
        id: UUID, replacing checkedHash: String, with passwordHash: String, displayName: String?, sparing: UUID?,
        before deadline: ContinuousClock.Instant?
    ) async throws -> UserRecord? {
        let updated: UserRecord?
        do {
            updated = try await self.replacePassword(
                id: id, replacing: checkedHash, with: passwordHash, displayName: displayName, sparing: sparing,
                before: deadline)
        } catch  where Database.mayHaveCommitted(error) {
            guard let changed = try? await Database.lookingUpLostCommit({ try await self.find(id: id, hash: passwordHash) })
            else { throw error }
            self.logger.notice("a password change whose commit went unanswered had committed; answered as made")
            updated = changed
        }
        self.outbox.wake()
        return updated
    }

    /// The user `id` if its password hash is `passwordHash`. `FOR SHARE` waits for a change of
    /// the row whose commit is still under way on a lost connection, and reads its outcome. The
    /// row is locked by its id alone and its hash compared here: a `WHERE` on the new hash is
    /// evaluated against the version the statement's snapshot sees, the old one, and the row
    /// would be left out without waiting (the session's diff review).
    private func find(id: UUID, hash passwordHash: String) async throws -> UserRecord? {
        let logger = self.logger
        return try await self.client.transaction(logger: logger) { connection -> UserRecord? in
            let rows = try await connection.query(
                "SELECT \(unescaped: Self.columns) FROM users WHERE id = \(id) FOR SHARE", logger: logger)
            for try await row in rows.decode(Row.self) {
                let user = Self.record(row)
                return user.passwordHash == passwordHash ? user : nil
            }
            return nil
        }
    }

    private func replacePassword(
        id: UUID, replacing checkedHash: String, with passwordHash: String, displayName: String?, sparing: UUID?,
        before deadline: ContinuousClock.Instant?
    ) async throws -> UserRecord? {
        try await self.client.transaction(logger: self.logger) { connection -> UserRecord? in
            let rows = try await connection.query(
                """
                UPDATE users SET password_hash = \(passwordHash), display_name = coalesce(\(displayName), display_name),
                    updated_at = now()
                WHERE id = \(id) AND password_hash = \(checkedHash) RETURNING \(unescaped: Self.columns)
                """, logger: self.logger)
            var updated: UserRecord?
            for try await row in rows.decode(Row.self) { updated = Self.record(row) }
            guard updated != nil else { return nil }
            try await self.revocations.revokeAll(of: id, sparing: sparing, on: connection)
            if let updated, displayName != nil { try await self.announce(AuthMessage.userUpdated, updated, on: connection) }
            // A change its caller will not hear of must not commit: the retry's currentPassword
            // would be wrong, a 403 that counts as a failed login.
            try CommitDeadline.ensureTimeLeft(before: deadline)
            return updated
        }
    }

    func find(ids: [UUID]) async throws -> [UserRecord] {
        let rows = try await self.client.query(
            "SELECT \(unescaped: Self.columns) FROM users WHERE id = ANY(\(ids))", logger: self.logger)
        var users: [UserRecord] = []
        for try await row in rows.decode(Row.self) { users.append(Self.record(row)) }
        return users
    }

    /// Writes the user's public data (no email) as `type` to the outbox.
    private func announce(_ type: MessageType, _ user: UserRecord, on connection: PostgresConnection) async throws {
        try await Outbox.append(
            Envelope(type: type, data: UserEnvelope(user: user.resource(includingEmail: false))), on: connection,
            logger: self.logger)
    }

    func search(prefix: String, limit: Int) async throws -> [UserRecord] {
        let pattern = Self.likePrefix(prefix.lowercased())
        let rows = try await self.client.query(
            """
            SELECT \(unescaped: Self.columns) FROM users
            WHERE lower(username) LIKE \(pattern) ESCAPE '\\' OR lower(display_name) LIKE \(pattern) ESCAPE '\\'
            ORDER BY lower(username) LIMIT \(limit)
            """, logger: self.logger)
        var users: [UserRecord] = []
        for try await row in rows.decode(Row.self) { users.append(Self.record(row)) }
        return users
    }

    /// `text%` with LIKE's wildcards in `text` escaped.
    static func likePrefix(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_") + "%"
    }
}
