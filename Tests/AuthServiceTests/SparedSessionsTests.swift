import Foundation
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import TestSupport
import Testing

@testable import AuthService

/// The session a password change spared (the caller's), ended by its own job once its access
/// tokens can have expired, not by the hourly pruning pass.
@Suite("Sessions a password change spared", .timeLimit(.minutes(1)))
struct SparedSessionsTests {
    @Test("a spared session whose access tokens can have expired is ended and announced by endSparedSessions")
    func sparedSessionEnds() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5) { authenticator, database in
            let logger = TestEnvironment.logger
            let (name, id) = try await CallerGaveUpTests.newAccount(authenticator)
            _ = try await authenticator.login(CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
            var family: UUID?
            for try await found in try await database.query(
                "SELECT family_id FROM refresh_tokens WHERE user_id = \(id)", logger: logger
            ).decode(UUID.self) {
                family = found
            }
            let session = try #require(family)
            _ = try await authenticator.updateUser(
                UpdateUserRequest(
                    userId: EntityID(id), displayName: nil, password: "another password 2",
                    currentPassword: CallerGaveUpTests.password, callerSession: EntityID(session)),
                actor: id, before: nil)
            let pruner = AuthPruner(
                client: database,
                revocations: SessionRevocations(client: database, accessTokenLifetime: .seconds(900), logger: logger),
                loginWindow: .seconds(600), registrationWindow: .seconds(600), outbox: OutboxSignal(), logger: logger)
            let ended: () async throws -> Bool = {
                var found = false
                for try await _ in try await database.query(
                    "SELECT family_id FROM ended_sessions WHERE family_id = \(session)", logger: logger
                ).decode(UUID.self) {
                    found = true
                }
                return found
            }
            try await pruner.endSparedSessions()
            #expect(try await ended() == false, "spared: its access tokens are still valid")
            try await database.query(
                "UPDATE spared_sessions SET end_at = now() - interval '1 second' WHERE family_id = \(session)", logger: logger)
            // A running auth service on the same schema may end it first: its pruner may hold the
            // row (`SKIP LOCKED`) while this one looks, and commit a moment after.
            try await pruner.endSparedSessions()
            #expect(await TestHelpers.eventually(timeout: .seconds(10), ended), "ended once its access tokens can have expired")
        }
    }
}

/// An ended session's access tokens are refused until the last of them has expired, even one
/// signed with a longer lifetime than auth now runs with (a replica configured otherwise, or
/// `JWT_ACCESS_TTL_SECONDS` lowered since): until the fifty-ninth session the refusal lasted the
/// current lifetime plus a minute, and such a token worked again for the rest of its life.
@Suite("Revocations outlast every access token", .timeLimit(.minutes(1)))
struct RevocationReachTests {
    @Test("logout and a password change refuse a session until a minute past its latest access token's expiry")
    func revocationCoversTheLatestToken() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5) { authenticator, database in
            let logger = TestEnvironment.logger
            let (name, id) = try await CallerGaveUpTests.newAccount(authenticator)
            let login = {
                try await authenticator.login(CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
            }
            let loggedOut = try await login()
            let ended = try await login()
            let spared = try await login()
            let families = try await Self.families(of: id, database)
            #expect(families.count == 3)
            // Recorded at issue: the lifetime the authenticator signs with (900 s).
            for (_, expiry) in families {
                let left = try #require(expiry).timeIntervalSinceNow
                #expect(left > 800 && left <= 900, "\(left)")
            }
            // As if each had been signed by a replica whose tokens live an hour.
            try await database.query(
                "UPDATE refresh_tokens SET access_expires_at = now() + interval '3600 seconds' WHERE user_id = \(id)",
                logger: logger)

            _ = try await authenticator.logout(LostCommitTests.request(loggedOut.refreshToken))
            let callerSession = try await Self.family(of: spared.refreshToken, database)
            _ = try await authenticator.updateUser(
                UpdateUserRequest(
                    userId: EntityID(id), displayName: nil, password: "another password 2",
                    currentPassword: CallerGaveUpTests.password, callerSession: EntityID(callerSession)),
                actor: id, before: nil)

            let endedFamilies = try await [
                Self.family(of: loggedOut.refreshToken, database), Self.family(of: ended.refreshToken, database),
            ]
            for family in endedFamilies {
                let until = try await Self.revokedUntil(family, database)
                let left = try #require(until, "not recorded as revoked").timeIntervalSinceNow
                // 3600 s and the minute's margin, not 900 s and the minute.
                #expect(left > 3600, "refused for \(left) s only")
            }
            var endAt: Date?
            for try await found in try await database.query(
                "SELECT end_at FROM spared_sessions WHERE family_id = \(callerSession)", logger: logger
            ).decode(Date.self) {
                endAt = found
            }
            let sparedFor = try #require(endAt, "the caller's session was not spared").timeIntervalSinceNow
            #expect(sparedFor > 3600, "the spared session ends after \(sparedFor) s, before its tokens expire")
        }
    }

    @Test("a session whose tokens were recorded without their access expiry is refused for a day from their issue")
    func tokensFromBeforeTheRecord() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5) { authenticator, database in
            let logger = TestEnvironment.logger
            let (name, id) = try await CallerGaveUpTests.newAccount(authenticator)
            let session = try await authenticator.login(
                CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
            // As a replica from before the record, or a token issued before its migration, left it.
            try await database.query(
                "UPDATE refresh_tokens SET access_expires_at = NULL WHERE user_id = \(id)", logger: logger)
            let family = try await Self.family(of: session.refreshToken, database)
            _ = try await authenticator.logout(LostCommitTests.request(session.refreshToken))
            let until = try await Self.revokedUntil(family, database)
            let left = try #require(until, "not recorded as revoked").timeIntervalSinceNow
            #expect(left > 86_000, "refused for \(left) s only")
        }
    }

    /// Until when `family` is refused (`revoked_sessions.until`); nil when it is not recorded.
    private static func revokedUntil(_ family: UUID, _ database: Database) async throws -> Date? {
        var until: Date?
        for try await found in try await database.query(
            "SELECT until FROM revoked_sessions WHERE family_id = \(family)", logger: TestEnvironment.logger
        ).decode(Date.self) {
            until = found
        }
        return until
    }

    private static func families(of user: UUID, _ database: Database) async throws -> [(UUID, Date?)] {
        var found: [(UUID, Date?)] = []
        for try await row in try await database.query(
            "SELECT family_id, access_expires_at FROM refresh_tokens WHERE user_id = \(user)",
            logger: TestEnvironment.logger
        ).decode((UUID, Date?).self) {
            found.append(row)
        }
        return found
    }

    private static func family(of refreshToken: String, _ database: Database) async throws -> UUID {
        var family: UUID?
        for try await found in try await database.query(
            "SELECT family_id FROM refresh_tokens WHERE token_hash = \(RefreshTokenStore.hash(refreshToken))",
            logger: TestEnvironment.logger
        ).decode(UUID.self) {
            family = found
        }
        return try #require(family)
    }
}
