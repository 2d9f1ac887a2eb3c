import Foundation
import MessengerContracts
import MessengerPostgres
import TestSupport
import Testing

@testable import AuthService

/// A refresh, a registration or a password change whose `COMMIT` PostgreSQL carried out while
/// the connection was lost before its answer came (a restart, a failover, the network): a
/// proxy between auth and PostgreSQL drops that answer and closes the connection.
@Suite("A write of auth's whose commit went unanswered", .timeLimit(.minutes(1)))
struct LostCommitTests {
    /// Until the forty-sixth session the refresh was answered 503 although the old token was
    /// spent, and the client's retry with it, a reuse, ended the session.
    @Test("a rotation that committed is answered with its new pair, and the old token stays spent")
    func committedRotationIsAnswered() async throws {
        try await Self.withProxiedAuthenticator { authenticator, proxy in
            let (name, _) = try await CallerGaveUpTests.newAccount(authenticator)
            let first = try await authenticator.login(
                CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
            proxy.cutAfterRequest(containing: "COMMIT")
            let rotated = try await authenticator.refresh(Self.request(first.refreshToken), requestID: UUID(), before: nil)
            #expect(!proxy.isArmed, "the answer to the rotation's COMMIT was dropped")
            #expect(rotated.refreshToken != first.refreshToken && rotated.user.username == name)
            // The pair given is the one stored: its refresh token rotates in turn.
            let next = try await authenticator.refresh(Self.request(rotated.refreshToken), requestID: UUID(), before: nil)
            #expect(next.refreshToken != rotated.refreshToken)
            await #expect {
                try await authenticator.refresh(Self.request(first.refreshToken), requestID: UUID(), before: nil)
            } throws: { error in
                (error as? ServiceError)?.code == .unauthorized
            }
        }
    }

    /// Until the fifty-fifth session: 503, and the client's retry found its own name taken.
    @Test("a registration that committed is answered as created; one cut before its commit is unavailable, and stored nowhere")
    func committedRegistrationIsAnswered() async throws {
        try await Self.withProxiedAuthenticator { authenticator, proxy in
            let name = TestEnvironment.uniqueName("lostcommit")
            proxy.cutAfterRequest(containing: "COMMIT")
            let created = try await authenticator.register(
                RegisterRequest(username: name, email: "\(name)@example.com", password: CallerGaveUpTests.password),
                before: nil)
            #expect(!proxy.isArmed, "the answer to the registration's COMMIT was dropped")
            #expect(created.user.username == name)
            let pair = try await authenticator.login(
                CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
            #expect(pair.user.id == created.user.id)

            let other = TestEnvironment.uniqueName("lostinsert")
            proxy.cutAfterRequest(containing: "INSERT INTO users")
            await #expect {
                try await authenticator.register(
                    RegisterRequest(username: other, email: "\(other)@example.com", password: CallerGaveUpTests.password),
                    before: nil)
            } throws: { error in
                // Answered `unavailable` by the RPC server.
                (error as? ServiceError)?.code == .unavailable || Database.isUnavailable(error)
            }
            #expect(!proxy.isArmed, "the answer to the registration's insert was dropped")
            // Nothing was stored: the name is free, and a retry creates the account.
            let retried = try await authenticator.register(
                RegisterRequest(username: other, email: "\(other)@example.com", password: CallerGaveUpTests.password),
                before: nil)
            #expect(retried.user.username == other)
        }
    }

    /// Until the fifty-fifth session: 503, and the client's retry was refused as a wrong
    /// `currentPassword` (a failed login of the account).
    @Test("a password change that committed is answered as made: the new password logs in, the old one does not")
    func committedPasswordChangeIsAnswered() async throws {
        try await Self.withProxiedAuthenticator { authenticator, proxy in
            let (name, id) = try await CallerGaveUpTests.newAccount(authenticator)
            let newPassword = "another password 2"
            proxy.cutAfterRequest(containing: "COMMIT")
            let changed = try await authenticator.updateUser(
                UpdateUserRequest(
                    userId: EntityID(id), displayName: nil, password: newPassword,
                    currentPassword: CallerGaveUpTests.password),
                actor: id, before: nil)
            #expect(!proxy.isArmed, "the answer to the change's COMMIT was dropped")
            #expect(changed.user.id.uuid == id)
            let pair = try await authenticator.login(CallerGaveUpTests.loginRequest(name, newPassword), before: nil)
            #expect(pair.user.id.uuid == id)
            await #expect {
                try await authenticator.login(CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
            } throws: { error in
                (error as? ServiceError)?.code == .unauthorized
            }
        }
    }

    /// A login with the right password whose session could not be stored (the connection lost
    /// under its insert) answers `unavailable`, and its retry works. Until the sixty-second
    /// session it counted as a failed login: after five such faults the owner's login from a
    /// new address was refused `rate_limited` (a review).
    @Test("a login whose session could not be stored after the right password does not count as a failed login")
    func faultAfterTheCheckIsNoFailure() async throws {
        try await Self.withProxiedAuthenticator { authenticator, proxy in
            let (name, id) = try await CallerGaveUpTests.newAccount(authenticator)
            let login = {
                try await authenticator.login(CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
            }
            let isUnavailable: (any Error) -> Bool = { error in
                (error as? ServiceError)?.code == .unavailable || Database.isUnavailable(error)
            }
            for _ in 0..<6 {
                proxy.cutAfterRequest(containing: "INSERT INTO refresh_tokens")
                // A login may fail before its insert, on a connection the last cut closed that the
                // pool did not know of yet: it is tried again until the insert is the one cut.
                for _ in 0..<10 where proxy.isArmed {
                    await #expect(performing: { _ = try await login() }, throws: isUnavailable)
                }
                #expect(!proxy.isArmed, "the session's insert was cut")
            }
            var pair: TokenPair?
            for _ in 0..<10 where pair == nil {
                do { pair = try await login() } catch  where isUnavailable(error) {}
            }
            #expect(pair?.user.id.uuid == id)
        }
    }

    /// The connection breaks as the `COMMIT` goes out, and PostgreSQL gets it half a second
    /// later: the look finds the write still under way, and must wait for its outcome. A look
    /// by the new hash in its `WHERE` found nothing at once (the session's diff review).
    @Test("a registration and a password change still committing when their connection broke are answered as done")
    func commitsUnderWayAreAwaited() async throws {
        try await Self.withProxiedAuthenticator { authenticator, proxy in
            let name = TestEnvironment.uniqueName("heldcommit")
            proxy.holdRequest(containing: "COMMIT", for: .milliseconds(500))
            let created = try await authenticator.register(
                RegisterRequest(username: name, email: "\(name)@example.com", password: CallerGaveUpTests.password),
                before: nil)
            #expect(created.user.username == name)
            let id = created.user.id.uuid
            let newPassword = "another password 2"
            proxy.holdRequest(containing: "COMMIT", for: .milliseconds(500))
            _ = try await authenticator.updateUser(
                UpdateUserRequest(
                    userId: EntityID(id), displayName: nil, password: newPassword,
                    currentPassword: CallerGaveUpTests.password),
                actor: id, before: nil)
            let pair = try await authenticator.login(CallerGaveUpTests.loginRequest(name, newPassword), before: nil)
            #expect(pair.user.id.uuid == id)
        }
    }

    /// An ``Authenticator`` whose database connections go through a ``CuttingProxy``.
    static func withProxiedAuthenticator(_ body: (Authenticator, CuttingProxy) async throws -> Void) async throws {
        var url = try #require(URLComponents(string: TestEnvironment.databaseURL))
        let proxy = try await CuttingProxy(to: url.host ?? "127.0.0.1", port: url.port ?? 5432)
        url.port = proxy.port
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5, databaseURL: try #require(url.string)) {
            authenticator, database in
            // Connections opened before the cut: the look after it need not open one, which can
            // take longer than the look's 2 s on a machine busy with the whole suite.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask { try await database.query("SELECT pg_sleep(0.2)", logger: TestEnvironment.logger) }
                }
                try await group.waitForAll()
            }
            try await body(authenticator, proxy)
        }
        try await proxy.close()
    }

    static func request(_ token: String) throws -> RefreshTokenRequest {
        try MessengerJSON.decode(RefreshTokenRequest.self, from: Data(#"{"refreshToken":"\#(token)"}"#.utf8))
    }
}
