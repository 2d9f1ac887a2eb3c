import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import AuthService

/// An account whose failed logins are over their limit still takes logins from the addresses it
/// logged in from lately (``LoginThrottle``). Until the fifty-sixth session anyone who knew a
/// username could keep its owner out with a few wrong passwords every window (a review).
@Suite("Logins from an account's known addresses", .serialized, .timeLimit(.minutes(1)))
struct KnownLoginAddressTests {
    static func login(_ name: String, _ password: String, from address: String) throws -> LoginRequest {
        let json = #"{"login":"\#(name)","password":"\#(password)","clientAddress":"\#(address)"}"#
        return try MessengerJSON.decode(LoginRequest.self, from: Data(json.utf8))
    }

    /// A new account that logged in from `home` once, then had wrong passwords tried from
    /// addresses of their own, each under its own limit, so that the account's failures went
    /// past theirs (3).
    static func accountOverItsFailures(_ authenticator: Authenticator) async throws -> (name: String, id: UUID, home: String) {
        let account = try await CallerGaveUpTests.newAccount(authenticator)
        let home = "test-home-\(UUID().uuidString)"
        _ = try await authenticator.login(try Self.login(account.name, CallerGaveUpTests.password, from: home), before: nil)
        for _ in 0..<4 {
            let attacker = "test-attacker-\(UUID().uuidString)"
            _ = try? await authenticator.login(try Self.login(account.name, "wrong password 1", from: attacker), before: nil)
        }
        return (account.name, account.id, home)
    }

    @Test("past the account's failures, an address it logged in from still logs in; another gets 429, even with the password")
    func knownAddressLogsIn() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 3) { authenticator, _ in
            let (account, password) = (try await Self.accountOverItsFailures(authenticator), CallerGaveUpTests.password)
            let home = account.home
            let refused = await #expect(throws: ServiceError.self) {
                _ = try await authenticator.login(
                    try Self.login(account.name, password, from: "test-new-\(UUID().uuidString)"), before: nil)
            }
            #expect(refused?.code == .rateLimited)

            // The owner's known address: a wrong password is checked (401, not 429), the right one logs in.
            let wrong = await #expect(throws: ServiceError.self) {
                _ = try await authenticator.login(try Self.login(account.name, "wrong password 2", from: home), before: nil)
            }
            #expect(wrong?.code == .unauthorized)
            _ = try await authenticator.login(try Self.login(account.name, password, from: home), before: nil)
        }
    }

    @Test("past the account's failures, its owner still changes the password from an address it logged in from; another gets 429")
    func knownAddressChangesPassword() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 3) { authenticator, _ in
            let (account, password) = (try await Self.accountOverItsFailures(authenticator), CallerGaveUpTests.password)
            let home = account.home
            func change(to new: String, from address: String?) async throws {
                _ = try await authenticator.updateUser(
                    UpdateUserRequest(
                        userId: EntityID(account.id), displayName: nil, password: new, currentPassword: password,
                        clientAddress: address),
                    actor: account.id, before: nil)
            }
            // A stolen token elsewhere, or a change that names no address, is refused like a login.
            for address in ["test-new-\(UUID().uuidString)", nil] {
                let refused = await #expect(throws: ServiceError.self) {
                    try await change(to: "another password 1", from: address)
                }
                #expect(refused?.code == .rateLimited)
            }
            try await change(to: "another password 2", from: home)
            _ = try await authenticator.login(try Self.login(account.name, "another password 2", from: home), before: nil)
        }
    }
}
