import Foundation
import Logging
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// Deletes what auth keeps only for a while, so that its tables follow the live sessions and
/// not every login and refresh ever made (docs/auth.md, "Pruning"):
///
/// 1. refresh tokens spent more than a day past their expiry: one presented is refused as
///    expired whether its row is there or not (``RefreshTokenStore/rotate(_:before:)`` checks
///    expiry first), so reuse detection loses nothing; except one with more than one live
///    successor (answers to copies of the request that spent it), which links them: the
///    rotation of one marks the others spent (``RefreshTokenStore``), and the session ends
///    and goes once they expire;
/// 2. sessions whose every token expired over a day ago, and sessions a password change spared
///    once their access tokens can have expired, are ended and announced
///    (``SessionRevocations/endExpired(limit:on:)``, ``SessionRevocations/endSpared(limit:on:)``),
///    then their tokens are deleted;
/// 3. ended sessions with no token left (nothing could find them to end again) a week after
///    they ended (``endedSessionsKept``: a gateway cut off from the broker is told of them when
///    it is back, ``SessionRevocations/recent(endedSince:)``), ended sessions'
///    refusal past its end (`revoked_sessions`), and login and registration counters whose
///    window ended over a window ago.
///
/// Each step goes in batches, each its own statement, so no pass holds many locks for long.
struct AuthPruner: Sendable {
    let client: Database
    let revocations: SessionRevocations
    let loginWindow: Duration
    let registrationWindow: Duration
    /// Woken once a pass ended sessions, for a prompt announcement.
    let outbox: OutboxSignal
    let logger: Logger

    static let batch = 1000
    /// How long an ended session is kept after it ended, at least: a gateway away for longer
    /// does not learn of the sessions ended before.
    static let endedSessionsKept = "7 days"

    /// Ends the sessions a password change spared whose access tokens can all have expired, and
    /// announces them; returns how many. Its own job runs it every ``sparedSessionsInterval`` at
    /// most: run only with the hourly pass, such a session (a thief's, who had refreshed before
    /// the owner changed the password) kept its sockets up to an hour past its end (until the
    /// fifty-fifth session; a review).
    @discardableResult
    func endSparedSessions() async throws -> Int {
        try await self.endSessions { try await $0.endSpared(limit: Self.batch, on: $1) }
    }

    /// How often spared sessions are looked at, at most (``endSparedSessions()``).
    static let sparedSessionsInterval: Duration = .seconds(30)

    /// Runs `end` (a batch of sessions ended and announced) in transactions until a batch ends
    /// fewer than ``batch``; returns how many it ended.
    private func endSessions(
        _ end: @escaping @Sendable (SessionRevocations, PostgresConnection) async throws -> Int
    ) async throws -> Int {
        let revocations = self.revocations
        var count = 0
        while true {
            let ended = try await self.client.withTransaction(logger: self.logger) { try await end(revocations, $0) }
            count += ended
            if ended > 0 { self.outbox.wake() }
            if ended < Self.batch { return count }
        }
    }

    /// One pass; returns how many rows it deleted or sessions it ended.
    @discardableResult
    func prune() async throws -> Int {
        var count = try await self.deleteInBatches(
            """
            WITH deleted AS (DELETE FROM refresh_tokens WHERE id IN (
                SELECT id FROM refresh_tokens p
                WHERE expires_at < now() - interval '1 day' AND spent_at IS NOT NULL
                  AND (SELECT count(*) FROM refresh_tokens c
                       WHERE c.replaces = p.id AND c.spent_at IS NULL AND c.revoked_at IS NULL) <= 1
                LIMIT \(Self.batch)) RETURNING 1)
            SELECT count(*)::int FROM deleted
            """)
        count += try await self.endSessions { try await $0.endExpired(limit: Self.batch, on: $1) }
        count += try await self.endSparedSessions()
        count += try await self.deleteInBatches(
            """
            WITH deleted AS (DELETE FROM refresh_tokens WHERE id IN (
                SELECT t.id FROM refresh_tokens t JOIN ended_sessions e ON e.family_id = t.family_id
                WHERE t.expires_at < now() - interval '1 day' LIMIT \(Self.batch)) RETURNING 1)
            SELECT count(*)::int FROM deleted
            """)
        count += try await self.deleteInBatches(
            """
            WITH deleted AS (DELETE FROM ended_sessions WHERE family_id IN (
                SELECT e.family_id FROM ended_sessions e
                WHERE e.ended_at < now() - \(Self.endedSessionsKept)::interval
                  AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = e.family_id) LIMIT \(Self.batch)) RETURNING 1)
            SELECT count(*)::int FROM deleted
            """)
        count += try await self.deleteInBatches(
            """
            WITH deleted AS (DELETE FROM revoked_sessions WHERE family_id IN (
                SELECT family_id FROM revoked_sessions WHERE until <= now() LIMIT \(Self.batch)) RETURNING 1)
            SELECT count(*)::int FROM deleted
            """)
        let window = Double(self.loginWindow.components.seconds)
        count += try await self.deleteInBatches(
            """
            WITH deleted AS (DELETE FROM login_failures WHERE key IN (
                SELECT key FROM login_failures
                WHERE window_started_at < now() - 2 * make_interval(secs => \(window)) LIMIT \(Self.batch)) RETURNING 1)
            SELECT count(*)::int FROM deleted
            """)
        let knownFor = Double(LoginThrottle.knownAddressLifetime.components.seconds)
        count += try await self.deleteInBatches(
            """
            WITH deleted AS (DELETE FROM known_login_addresses WHERE (login_key, address_key) IN (
                SELECT login_key, address_key FROM known_login_addresses
                WHERE seen_at < now() - make_interval(secs => \(knownFor)) LIMIT \(Self.batch)) RETURNING 1)
            SELECT count(*)::int FROM deleted
            """)
        let registrationWindow = Double(self.registrationWindow.components.seconds)
        count += try await self.deleteInBatches(
            """
            WITH deleted AS (DELETE FROM registration_counts WHERE key IN (
                SELECT key FROM registration_counts
                WHERE window_started_at < now() - 2 * make_interval(secs => \(registrationWindow)) LIMIT \(Self.batch))
                RETURNING 1)
            SELECT count(*)::int FROM deleted
            """)
        return count
    }

    /// Runs `statement` (a `DELETE` of at most ``batch`` rows that answers how many it deleted)
    /// until it deletes fewer.
    private func deleteInBatches(_ statement: PostgresQuery) async throws -> Int {
        var total = 0
        while true {
            var deleted = 0
            for try await count in try await self.client.write(statement, logger: self.logger).decode(Int.self) {
                deleted = count
            }
            total += deleted
            if deleted < Self.batch { return total }
        }
    }
}
