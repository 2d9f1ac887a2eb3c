import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import AuthService

/// A refresh whose `COMMIT` PostgreSQL carried out while the connection was lost before its
/// answer came (a restart, a failover, the network): a proxy between auth and PostgreSQL drops
/// that answer and closes the connection.
@Suite("A refresh whose commit went unanswered", .timeLimit(.minutes(1)))
struct LostCommitTests {
    /// Until the forty-sixth session the refresh was answered 503 although the old token was
    /// spent, and the client's retry with it, a reuse, ended the session.
    @Test("a rotation that committed is answered with its new pair, and the old token stays spent")
    func committedRotationIsAnswered() async throws {
        var url = try #require(URLComponents(string: TestEnvironment.databaseURL))
        let proxy = try await CuttingProxy(to: url.host ?? "127.0.0.1", port: url.port ?? 5432)
        url.port = proxy.port
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5, databaseURL: try #require(url.string)) {
            authenticator, _ in
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
        try await proxy.close()
    }

    static func request(_ token: String) throws -> RefreshTokenRequest {
        try MessengerJSON.decode(RefreshTokenRequest.self, from: Data(#"{"refreshToken":"\#(token)"}"#.utf8))
    }
}
