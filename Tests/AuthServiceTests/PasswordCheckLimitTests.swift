import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import AuthService

/// Password checks count per login, passed or failed (``LoginThrottle``): each is a bcrypt,
/// and until the fifty-third session a client that knew the password could ask for as many as
/// it liked, logins and password changes alike (a review).
@Suite("Password checks per login", .serialized, .timeLimit(.minutes(1)))
struct PasswordCheckLimitTests {
    @Test("logins with the right password, and password changes, count against the login's checks")
    func successesCount() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5, maxChecks: 3) { authenticator, _ in
            let account = try await CallerGaveUpTests.newAccount(authenticator)
            let password = CallerGaveUpTests.password
            for _ in 0..<2 {
                _ = try await authenticator.login(try CallerGaveUpTests.loginRequest(account.name, password), before: nil)
            }
            // The third check: a password change (its currentPassword), which also passes.
            let changed = "another password 2"
            _ = try await authenticator.updateUser(
                UpdateUserRequest(
                    userId: EntityID(account.id), displayName: nil, password: changed, currentPassword: password),
                actor: account.id, before: nil)
            let refused = await #expect(throws: ServiceError.self) {
                _ = try await authenticator.login(try CallerGaveUpTests.loginRequest(account.name, changed), before: nil)
            }
            #expect(refused?.code == .rateLimited)
            #expect(refused?.message == "too many logins; try again later")
            // Another account's logins are not affected.
            let other = try await CallerGaveUpTests.newAccount(authenticator)
            _ = try await authenticator.login(try CallerGaveUpTests.loginRequest(other.name, password), before: nil)
        }
    }
}
