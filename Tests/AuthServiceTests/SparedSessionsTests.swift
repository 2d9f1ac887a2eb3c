import Foundation
import MessengerContracts
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
            // A running auth service on the same schema may end it first.
            try await pruner.endSparedSessions()
            #expect(try await ended(), "ended once its access tokens can have expired")
        }
    }
}
