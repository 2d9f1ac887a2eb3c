import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// Ends login sessions (refresh token families) inside the caller's transaction: revokes their
/// refresh tokens, records the sessions whose access tokens may still be unexpired in
/// `revoked_sessions`, and announces them as `auth.sessions_revoked.v1` through the outbox, so
/// gateways refuse those tokens and close their sockets (docs/auth.md, "Revoked sessions").
///
/// A family's access tokens are signed when its refresh tokens are created (at login and at each
/// rotation), so none is valid later than its newest refresh token's `created_at` plus
/// ``reach``. Older families are revoked without an announcement.
struct SessionRevocations: Sendable {
    let client: Database
    /// An access token's lifetime plus a minute for the clocks of auth and PostgreSQL.
    let reach: Duration
    let logger: Logger

    init(client: Database, accessTokenLifetime: Duration, logger: Logger) {
        self.client = client
        self.reach = accessTokenLifetime + .seconds(60)
        self.logger = logger
    }

    /// Revokes the family `family` (a logout, or a spent refresh token presented again).
    func revokeFamily(_ family: UUID, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(
            """
            UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = \(family) AND revoked_at IS NULL
            RETURNING user_id, family_id, created_at, now()
            """, logger: self.logger)
        try await self.end(rows, sparing: nil, on: connection)
    }

    /// Revokes every refresh token of `userID` (a password change), and ends every session but
    /// `sparing`, whose access tokens stay valid until they expire: the caller keeps working,
    /// and logs in again when its token runs out, having no refresh token left.
    func revokeAll(of userID: UUID, sparing: UUID?, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(
            """
            UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = \(userID) AND revoked_at IS NULL
            RETURNING user_id, family_id, created_at, now()
            """, logger: self.logger)
        try await self.end(rows, sparing: sparing, on: connection)
    }

    /// Every session ended whose access tokens may be unexpired, by user: what a gateway needs
    /// at start, and again now and then in case it missed an announcement.
    func recent() async throws -> RevokedSessionList {
        let rows = try await self.client.query(
            "SELECT user_id, family_id, until FROM revoked_sessions WHERE until > now()", logger: self.logger)
        var byUser: [UUID: RevokedSessions] = [:]
        for try await (userID, family, until) in rows.decode((UUID, UUID, Date).self) {
            Self.add(family, of: userID, until: until, to: &byUser)
        }
        return RevokedSessionList(items: Array(byUser.values))
    }

    /// Records and announces the sessions of the revoked refresh token rows `rows` (user,
    /// family, created, the database's now) whose access tokens may still be valid.
    private func end(_ rows: PostgresRowSequence, sparing: UUID?, on connection: PostgresConnection) async throws {
        var newest: [UUID: (user: UUID, created: Date)] = [:]
        var now = Date.distantPast
        for try await (userID, family, created, databaseNow) in rows.decode((UUID, UUID, Date, Date).self) {
            now = databaseNow
            if family == sparing { continue }
            if let known = newest[family], known.created >= created { continue }
            newest[family] = (userID, created)
        }
        let reach = Double(self.reach.components.seconds)
        var byUser: [UUID: RevokedSessions] = [:]
        for (family, (userID, created)) in newest where created.addingTimeInterval(reach) > now {
            Self.add(family, of: userID, until: created.addingTimeInterval(reach), to: &byUser)
        }
        guard !byUser.isEmpty else { return }
        try await connection.query("DELETE FROM revoked_sessions WHERE until <= now()", logger: self.logger)
        for revoked in byUser.values {
            let families = revoked.sessionIds.map(\.uuid)
            try await connection.query(
                """
                INSERT INTO revoked_sessions (family_id, user_id, until)
                SELECT unnest(\(families)::uuid[]), \(revoked.userId.uuid), \(revoked.until)
                ON CONFLICT (family_id) DO UPDATE SET until = greatest(revoked_sessions.until, excluded.until)
                """, logger: self.logger)
            try await Outbox.append(
                Envelope(type: AuthMessage.sessionsRevoked, data: revoked), on: connection, logger: self.logger)
            self.logger.info(
                "sessions revoked", metadata: ["user_id": "\(revoked.userId)", "sessions": "\(families.count)"])
        }
    }

    private static func add(_ family: UUID, of userID: UUID, until: Date, to byUser: inout [UUID: RevokedSessions]) {
        var revoked = byUser[userID] ?? RevokedSessions(userId: EntityID(userID), sessionIds: [], until: until)
        revoked.sessionIds.append(EntityID(family))
        revoked.until = max(revoked.until, until)
        byUser[userID] = revoked
    }
}
