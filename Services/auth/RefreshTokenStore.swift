import Crypto
import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// Rotating refresh tokens with reuse detection, stored only as SHA-256 hashes.
struct RefreshTokenStore: Sendable {
    let client: Database
    let lifetime: Duration
    let revocations: SessionRevocations
    /// Woken after a revocation commits, for a prompt announcement.
    let outbox: OutboxSignal
    let logger: Logger

    /// What presenting a refresh token led to.
    enum Rotation: Sendable {
        /// Spent; a new token in the same family (login session) was issued for `user`, read in
        /// the rotation's transaction (read after it, a failure left the client with a spent
        /// token and a 503 telling it to retry, and the retry ended the session as a reuse).
        case rotated(user: UserRecord, newToken: String, family: UUID)
        /// Already spent: the whole family is now revoked.
        case reused
        /// Already spent by this same request, delivered again (RPC requests are delivered at
        /// least once), and its answer used since (or the copy came too late, or too often):
        /// nothing changed, and the answer the caller acted on stands.
        case repeated
        /// Unknown, expired or revoked.
        case invalid
    }

    /// A new random token (32 bytes, base64url) and its hash.
    static func makeToken() -> (token: String, hash: Data) {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        let token = bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return (token, Self.hash(token))
    }

    static func hash(_ token: String) -> Data {
        Data(SHA256.hash(data: Data(token.utf8)))
    }

    /// A login session: a refresh token family and its first token.
    struct NewSession: Sendable {
        var token: String
        var family: UUID
    }

    /// Starts a new family for `userID` (at login) and returns its first token; nil when the
    /// user's password hash is no longer `passwordHash`, the one the login was checked against.
    ///
    /// The user's row is locked first, as a password change's `UPDATE` does: a login checked
    /// against the old password just before a change gets no family after it (which the change's
    /// revocation would not have seen), and one that issues first has its family revoked by it.
    func issue(userID: UUID, whilePasswordHashIs passwordHash: String) async throws -> NewSession? {
        let (token, hash) = Self.makeToken()
        let expiresAt = Date().addingTimeInterval(Double(self.lifetime.components.seconds))
        let accessExpiresAt = self.revocations.accessTokenExpiry()
        let id = UUID.v7()
        let logger = self.logger
        return try await self.client.transaction(logger: logger) { connection -> NewSession? in
            let rows = try await connection.query(
                "SELECT id FROM users WHERE id = \(userID) AND password_hash = \(passwordHash) FOR NO KEY UPDATE",
                logger: logger)
            var unchanged = false
            for try await _ in rows.decode(UUID.self) { unchanged = true }
            guard unchanged else { return nil }
            try await connection.query(
                """
                INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at, access_expires_at)
                VALUES (\(id), \(id), \(userID), \(hash), \(expiresAt), \(accessExpiresAt))
                """, logger: logger)
            return NewSession(token: token, family: id)
        }
    }

    /// Spends `token` and issues its successor, or revokes its family if it was spent before.
    ///
    /// Every change to a user's refresh tokens first locks that user's row (``lockOwner``), as a
    /// password change does by updating it: a rotation, a logout, a reuse and a password change
    /// of one user run one after the other, and each reads the tokens only once it holds the
    /// lock. Without it, a revocation could miss the successor that a rotation running beside it
    /// had not committed yet, and that token would outlive its family's revocation. Two
    /// concurrent refreshes with one token end as one rotation and one reuse.
    ///
    /// `request` is the RPC request's id: the token records the request that spent it, and the
    /// same request delivered again (the broker redelivers a request whose ack a lost connection
    /// took, and a publisher republishes one whose confirm it did not get) is ``Rotation/repeated``,
    /// not a reuse. Until the forty-first session such a copy revoked the session its first
    /// delivery had just rotated, and the caller, answered with the new token, was logged out.
    ///
    /// A connection lost after PostgreSQL committed the rotation and before its answer came (a
    /// restart, a failover, the network) leaves the outcome unknown; the rotation is then looked
    /// up by its new token, and one that committed is answered as usual. Answered 503, the
    /// client's retry with the same token was a reuse and ended its session (until the
    /// forty-sixth session; AuthServiceTests' lost-commit test cuts the answer to the `COMMIT`).
    func rotate(_ token: String, request: UUID, before deadline: ContinuousClock.Instant?) async throws -> Rotation {
        let (newToken, newHash) = Self.makeToken()
        do {
            return try await self.rotate(token, to: (newToken, newHash), request: request, before: deadline)
        } catch  where Database.isUnavailable(error) {
            guard let committed = await self.committedRotation(to: (newToken, newHash)) else { throw error }
            self.logger.notice("a rotation whose commit went unanswered had committed; answered as rotated")
            return committed
        }
    }

    /// The rotation to `successor`, if it committed (the successor is stored); nil if it did not
    /// or that cannot be known. The pool may hand out another connection the cut closed, so the
    /// look is tried a few times, for at most 2 s, whatever the request's deadline: a copy the
    /// broker delivered again has its deadline passed, and its caller may well be waiting (until
    /// the fifty-first session the look stopped at the deadline, and such a copy got one try).
    private func committedRotation(to successor: (token: String, hash: Data)) async -> Rotation? {
        try? await Database.lookingUpLostCommit { try await self.lookUpRotation(to: successor) }
    }

    private func lookUpRotation(to successor: (token: String, hash: Data)) async throws -> Rotation? {
        let logger = self.logger
        return try await self.client.withConnection { connection -> Rotation? in
            let rows = try await connection.query(
                "SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = \(successor.hash)", logger: logger)
            var found: (UUID, UUID)?
            for try await row in rows.decode((UUID, UUID).self) { found = row }
            guard let (family, userID) = found,
                let user = try await PostgresUserRepository.find(id: userID, on: connection, logger: logger)
            else { return nil }
            return .rotated(user: user, newToken: successor.token, family: family)
        }
    }

    private func rotate(
        _ token: String, to successor: (token: String, hash: Data), request: UUID, before deadline: ContinuousClock.Instant?
    ) async throws -> Rotation {
        let hash = Self.hash(token)
        let lifetime = self.lifetime
        let revocations = self.revocations
        let logger = self.logger
        let rotation = try await self.client.transaction(logger: logger) { connection -> Rotation in
            guard try await Self.lockOwner(ofTokenHash: hash, on: connection, logger: logger) != nil else { return .invalid }
            let rows = try await connection.query(
                """
                SELECT id, family_id, user_id, expires_at, spent_at IS NOT NULL, revoked_at IS NOT NULL, spent_by,
                       replaces, coalesce(now() - spent_at < \(Self.copyWindow)::float8 * interval '1 second', false)
                FROM refresh_tokens WHERE token_hash = \(hash) FOR UPDATE
                """, logger: logger)
            var found: (UUID, UUID, UUID, Date, Bool, Bool, UUID?, UUID?, Bool)?
            for try await row in rows.decode((UUID, UUID, UUID, Date, Bool, Bool, UUID?, UUID?, Bool).self) { found = row }
            guard let (id, family, userID, expiresAt, spent, revoked, spentBy, replaces, spentRecently) = found,
                expiresAt > Date(), let user = try await PostgresUserRepository.find(id: userID, on: connection, logger: logger)
            else {
                return .invalid
            }
            if revoked {
                // A spent token of a revoked session is a reuse all the same: the session a
                // password change spared keeps its access tokens a while, and until the
                // fifty-third session its thief's refresh, found by the owner's old token,
                // ended nothing (a review). A session ended before stays as it is.
                guard spent, spentBy != request else { return .invalid }
                try await revocations.revokeFamily(family, on: connection)
                logger.warning("revoked refresh token reused: session ended", metadata: ["user_id": "\(userID)"])
                return .reused
            }
            if spent, spentBy == request {
                guard spentRecently, try await Self.mayAnswerAgain(id, family: family, on: connection, logger: logger) else {
                    logger.notice("a refresh request delivered again after its answer was used; nothing changed")
                    return .repeated
                }
                logger.notice("a refresh request delivered again; answered with another successor of its token")
            } else if spent {
                try await revocations.revokeFamily(family, on: connection)
                logger.warning("refresh token reused: family revoked", metadata: ["user_id": "\(userID)"])
                return .reused
            } else {
                try await connection.query(
                    "UPDATE refresh_tokens SET spent_at = now(), spent_by = \(request) WHERE id = \(id)", logger: logger)
                if let replaces {
                    // The successors answered to copies of the request that made this token: the
                    // caller took this one, so the others are superseded, and presenting one of
                    // them is a reuse (``mayAnswerAgain(_:family:on:logger:)``).
                    try await connection.query(
                        """
                        UPDATE refresh_tokens SET spent_at = now()
                        WHERE family_id = \(family) AND replaces = \(replaces) AND id <> \(id) AND spent_at IS NULL
                        """, logger: logger)
                }
            }
            let newExpiry = Date().addingTimeInterval(Double(lifetime.components.seconds))
            let accessExpiry = revocations.accessTokenExpiry()
            try await connection.query(
                """
                INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, replaces, expires_at, access_expires_at)
                VALUES (\(UUID.v7()), \(family), \(userID), \(successor.hash), \(id), \(newExpiry), \(accessExpiry))
                """, logger: logger)
            // A rotation its caller will not hear of must not be spent: the retry would be a reuse.
            // A copy's successor spends nothing (the token was spent by the first copy), so it
            // is answered even when its deadline is unknown: a copy the broker delivers again
            // has its deadline passed (``RPCServer``), and its caller may well be waiting.
            if !spent { try CommitDeadline.ensureTimeLeft(before: deadline) }
            return .rotated(user: user, newToken: successor.token, family: family)
        }
        if case .reused = rotation { self.outbox.wake() }
        return rotation
    }

    /// How long after a token was spent a copy of the request that spent it may still be
    /// answered with another successor, in seconds: copies come within their caller's wait
    /// (`RPC_TIMEOUT_MS`, 5 s by default).
    static let copyWindow = 60.0

    /// How many successors a token may have, its first included.
    static let successorsPerToken = 4

    /// Whether a copy of the request that spent the token `id` may be answered with another
    /// successor: none of its successors has been used (spent or revoked) yet, and it has
    /// fewer than ``successorsPerToken``.
    ///
    /// The copy's answer can reach the caller before the first copy's, or alone: the first
    /// copy's replica may have lost its connection after its commit, and the broker then
    /// delivers the request again. Until the fifty-first session a copy answered 401 ("answered
    /// already"), and a caller whose first answer was late or lost was logged out. The answer
    /// the caller did not take is dropped (its correlation id was answered), and its token
    /// reached no one: once the caller uses the one it took, the others count as spent, so
    /// presenting one of them is a reuse that revokes the family; a logout and a password
    /// change revoke them with it.
    private static func mayAnswerAgain(
        _ id: UUID, family: UUID, on connection: PostgresConnection, logger: Logger
    ) async throws -> Bool {
        let rows = try await connection.query(
            """
            SELECT count(*) FILTER (WHERE spent_at IS NOT NULL OR revoked_at IS NOT NULL), count(*) FROM refresh_tokens
            WHERE family_id = \(family) AND replaces = \(id)
            """, logger: logger)
        var (used, successors) = (0, 0)
        for try await (u, all) in rows.decode((Int, Int).self) { (used, successors) = (u, all) }
        return used == 0 && successors < Self.successorsPerToken
    }

    /// Revokes the family `token` belongs to (logout). Unknown tokens are ignored.
    func revokeFamily(of token: String) async throws {
        let hash = Self.hash(token)
        let revocations = self.revocations
        let logger = self.logger
        try await self.client.transaction(logger: logger) { connection in
            guard let family = try await Self.lockOwner(ofTokenHash: hash, on: connection, logger: logger) else { return }
            try await revocations.revokeFamily(family, on: connection)
        }
        self.outbox.wake()
    }

    /// Locks the row of the user the token was issued to, as an `UPDATE users` would (see
    /// ``rotate(_:before:)``), and returns the token's family; nil for an unknown token. The statements
    /// after it in the transaction read what was committed before the lock was granted.
    private static func lockOwner(ofTokenHash hash: Data, on connection: PostgresConnection, logger: Logger) async throws
        -> UUID?
    {
        let rows = try await connection.query(
            """
            SELECT t.family_id FROM refresh_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = \(hash)
            FOR NO KEY UPDATE OF u
            """, logger: logger)
        var family: UUID?
        for try await id in rows.decode(UUID.self) { family = id }
        return family
    }
}
