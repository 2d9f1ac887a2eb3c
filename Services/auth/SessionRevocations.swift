import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// Ends login sessions (refresh token families) inside the caller's transaction: revokes their
/// refresh tokens, records each session ended (`ended_sessions`, for good) and, while its
/// access tokens may be unexpired, in `revoked_sessions`, and announces it as
/// `auth.sessions_revoked.v1` through the outbox, so gateways refuse its tokens and close its
/// sockets (docs/auth.md, "Revoked sessions").
///
/// Every session not ended before is announced, however old: a socket outlives its token, so
/// a session whose last access token expired long ago may still have one open. (Until the
/// thirty-seventh session only sessions with a token signed in the last ``reach`` were, and a
/// phone connected for more than about 16 minutes without a refresh kept receiving messages
/// after its logout; a session spared by a password change was never announced later.)
struct SessionRevocations: Sendable {
    let client: Database
    /// The lifetime of the access tokens this replica signs.
    let accessTokenLifetime: Duration
    /// An access token's lifetime plus a minute for the clocks of auth and PostgreSQL: how long
    /// an ended session's tokens are refused at least (its last one was signed before it ended).
    /// Longer when one of them was signed to expire later (`refresh_tokens.access_expires_at`):
    /// signed by a replica with a longer lifetime, or before the lifetime was lowered. Until the
    /// fifty-ninth session the refusal ended at this reach alone, and after lowering
    /// `JWT_ACCESS_TTL_SECONDS` a logged-out session's older tokens worked again for the rest
    /// of their life (a review).
    let reach: Duration
    let logger: Logger

    init(client: Database, accessTokenLifetime: Duration, logger: Logger) {
        self.client = client
        self.accessTokenLifetime = accessTokenLifetime
        self.reach = accessTokenLifetime + .seconds(60)
        self.logger = logger
    }

    /// The latest expiry of the access tokens of the session ended in the statement's row of
    /// `ended_sessions`. A token recorded without one (issued before auth migration 19, or by a
    /// replica older than it during an upgrade) counts as living a day from its refresh token's
    /// creation, the longest lifetime auth accepts: refused too long rather than too briefly.
    static let lastAccessExpiry = """
        (SELECT max(coalesce(r.access_expires_at, r.created_at + interval '86400 seconds'))
         FROM refresh_tokens r WHERE r.family_id = ended_sessions.family_id)
        """

    /// When an access token signed now expires, as recorded with the refresh token issued
    /// beside it (the signature comes a moment later; ``reach``'s minute covers that).
    func accessTokenExpiry() -> Date {
        Date().addingTimeInterval(Double(self.accessTokenLifetime.components.seconds))
    }

    /// Ends the session `family` (a logout, or a spent refresh token presented again), unless
    /// it was ended before.
    func revokeFamily(_ family: UUID, on connection: PostgresConnection) async throws {
        try await connection.query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = \(family) AND revoked_at IS NULL",
            logger: self.logger)
        let ended = try await connection.query(
            """
            INSERT INTO ended_sessions (family_id, user_id)
            SELECT DISTINCT family_id, user_id FROM refresh_tokens WHERE family_id = \(family)
            ON CONFLICT (family_id) DO NOTHING
            RETURNING user_id, family_id,
                \(unescaped: Self.lastAccessExpiry)
            """, logger: self.logger)
        try await self.announce(ended, on: connection)
    }

    /// Revokes every refresh token of `userID` (a password change), and ends every session but
    /// `sparing` not ended before, a session spared by an earlier password change included.
    /// `sparing`'s access tokens stay valid until they expire: the caller keeps working, and
    /// logs in again when its token runs out, having no refresh token left. The session itself
    /// ends once they can have expired (``endSpared(limit:on:)``), and its sockets with it:
    /// until the fifty-third session it ended only when its tokens were a day past their expiry,
    /// a month later, and a socket on it (the caller's, or a thief's who had refreshed with
    /// its token) kept receiving everything until then (a review).
    func revokeAll(of userID: UUID, sparing: UUID?, on connection: PostgresConnection) async throws {
        try await connection.query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = \(userID) AND revoked_at IS NULL",
            logger: self.logger)
        if let sparing {
            try await connection.query(
                """
                INSERT INTO spared_sessions (family_id, user_id, end_at)
                SELECT \(sparing), \(userID), greatest(
                    now() + make_interval(secs => \(Double(self.reach.components.seconds))),
                    (SELECT max(coalesce(access_expires_at, created_at + interval '86400 seconds'))
                     FROM refresh_tokens WHERE family_id = \(sparing)) + interval '60 seconds')
                WHERE NOT EXISTS (SELECT 1 FROM ended_sessions WHERE family_id = \(sparing))
                ON CONFLICT (family_id) DO NOTHING
                """, logger: self.logger)
        }
        let ended = try await connection.query(
            """
            INSERT INTO ended_sessions (family_id, user_id)
            SELECT DISTINCT family_id, user_id FROM refresh_tokens
            WHERE user_id = \(userID) AND family_id IS DISTINCT FROM \(sparing)
            ON CONFLICT (family_id) DO NOTHING
            RETURNING user_id, family_id,
                \(unescaped: Self.lastAccessExpiry)
            """, logger: self.logger)
        try await self.announce(ended, on: connection)
    }

    /// Ends up to `limit` sessions none of whose refresh tokens is younger than a day past its
    /// expiry (abandoned ones, and ones spared by a password change), announced like a logout: a
    /// socket still open on one is closed. Their tokens are then pruned (``AuthPruner``), and a
    /// session not ended first would no longer be found to end. Returns how many were ended.
    ///
    /// A day's margin, so that a rotation checking expiry by auth's clock (``RefreshTokenStore``)
    /// never meets a session this ends by PostgreSQL's.
    func endExpired(limit: Int, on connection: PostgresConnection) async throws -> Int {
        let ended = try await connection.query(
            """
            INSERT INTO ended_sessions (family_id, user_id)
            SELECT DISTINCT t.family_id, t.user_id FROM refresh_tokens t
            WHERE t.expires_at < now() - interval '1 day'
              AND NOT EXISTS (SELECT 1 FROM ended_sessions e WHERE e.family_id = t.family_id)
              AND NOT EXISTS (
                  SELECT 1 FROM refresh_tokens n WHERE n.family_id = t.family_id AND n.expires_at >= now() - interval '1 day')
            LIMIT \(limit)
            ON CONFLICT (family_id) DO NOTHING
            RETURNING user_id, family_id,
                \(unescaped: Self.lastAccessExpiry)
            """, logger: self.logger)
        return try await self.announce(ended, on: connection)
    }

    /// Ends up to `limit` sessions a password change spared whose access tokens can all have
    /// expired, announced like a logout (a socket still open on one is closed). Returns how many
    /// were ended.
    func endSpared(limit: Int, on connection: PostgresConnection) async throws -> Int {
        let ended = try await connection.query(
            """
            WITH due AS (
                DELETE FROM spared_sessions WHERE family_id IN (
                    SELECT family_id FROM spared_sessions WHERE end_at < now() ORDER BY end_at LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED)
                RETURNING family_id, user_id
            )
            INSERT INTO ended_sessions (family_id, user_id)
            SELECT family_id, user_id FROM due
            ON CONFLICT (family_id) DO NOTHING
            RETURNING user_id, family_id,
                \(unescaped: Self.lastAccessExpiry)
            """, logger: self.logger)
        return try await self.announce(ended, on: connection)
    }

    /// Every session ended whose access tokens may be unexpired, by user: what a gateway needs
    /// at start, and again now and then in case it missed an announcement. With `endedSince`
    /// (where the gateway's last answer left off) older than those, the sessions ended since
    /// then too, in pages of ``endedPage``: a gateway cut off from the broker for longer than a
    /// token lives missed their announcements, and its sockets of them are still open. Until
    /// the forty-eighth session such a gateway never learnt of them.
    func recent(endedSince: String? = nil) async throws -> RevokedSessionList {
        let since = try endedSince.map(EndedSessionsPlace.init)
        return try await self.client.withConnection { connection in
            var now: Int64 = 0
            let clock = try await connection.query(
                "SELECT (extract(epoch FROM now()) * 1000000)::bigint", logger: self.logger)
            for try await microseconds in clock.decode(Int64.self) { now = microseconds }
            var byUser: [UUID: RevokedSessions] = [:]
            var listed: Set<UUID> = []
            let rows = try await connection.query(
                "SELECT user_id, family_id, until FROM revoked_sessions WHERE until > now()", logger: self.logger)
            for try await (userID, family, until) in rows.decode((UUID, UUID, Date).self) {
                Self.add(family, of: userID, until: until, to: &byUser)
                listed.insert(family)
            }
            // Five minutes back, for a session whose transaction began (its `ended_at`) before
            // now and commits after.
            let complete = EndedSessionsPlace(microseconds: now - 300_000_000)
            // `revoked_sessions` holds every session ended within ``reach``, less a minute for
            // the clocks (its `until` is auth's time, `ended_at` PostgreSQL's).
            let covered = now - (Int64(self.reach.components.seconds) - 60) * 1_000_000
            guard let since, since.microseconds < covered else {
                return RevokedSessionList(items: Array(byUser.values), next: complete.text, more: false)
            }
            // The nil UUID sorts first: with no session named, every one ended at the instant.
            let after = since.after ?? UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
            // On the column itself, so that its index (`ended_sessions_in_order`) serves: the
            // place's microseconds added to the epoch as a whole interval, exactly.
            let ended = try await connection.query(
                """
                SELECT user_id, family_id, ended_at + make_interval(secs => \(Double(self.reach.components.seconds))),
                       (extract(epoch FROM ended_at) * 1000000)::bigint
                FROM ended_sessions
                WHERE (ended_at, family_id) > ('epoch'::timestamptz + \(since.microseconds) * interval '1 microsecond', \(after))
                ORDER BY ended_at, family_id LIMIT \(Self.endedPage)
                """, logger: self.logger)
            var last: EndedSessionsPlace?
            var count = 0
            for try await (userID, family, until, endedAt) in ended.decode((UUID, UUID, Date, Int64).self) {
                count += 1
                last = EndedSessionsPlace(microseconds: endedAt, after: family)
                // Its tokens expired: the gateway closes its sockets and keeps nothing.
                if !listed.contains(family) { Self.add(family, of: userID, until: until, to: &byUser) }
            }
            if count == Self.endedPage, let last {
                return RevokedSessionList(items: Array(byUser.values), next: last.text, more: true)
            }
            return RevokedSessionList(items: Array(byUser.values), next: complete.text, more: false)
        }
    }

    /// Sessions ended since a gateway's place, at most, in one answer.
    static let endedPage = 2_000

    /// Records in `revoked_sessions` and announces the sessions just ended, `rows` (user,
    /// family, the latest expiry of its access tokens when recorded): their tokens are refused
    /// for ``reach`` from now, or until a minute past that expiry when it is later. Returns how
    /// many sessions.
    @discardableResult
    private func announce(_ rows: PostgresRowSequence, on connection: PostgresConnection) async throws -> Int {
        let reachEnd = Date().addingTimeInterval(Double(self.reach.components.seconds))
        var byUser: [UUID: RevokedSessions] = [:]
        for try await (userID, family, lastAccessExpiry) in rows.decode((UUID, UUID, Date?).self) {
            let until = max(reachEnd, lastAccessExpiry.map { $0.addingTimeInterval(60) } ?? reachEnd)
            Self.add(family, of: userID, until: until, to: &byUser)
        }
        guard !byUser.isEmpty else { return 0 }
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
        return byUser.values.reduce(0) { $0 + $1.sessionIds.count }
    }

    private static func add(_ family: UUID, of userID: UUID, until: Date, to byUser: inout [UUID: RevokedSessions]) {
        var revoked = byUser[userID] ?? RevokedSessions(userId: EntityID(userID), sessionIds: [], until: until)
        revoked.sessionIds.append(EntityID(family))
        revoked.until = max(revoked.until, until)
        byUser[userID] = revoked
    }
}
