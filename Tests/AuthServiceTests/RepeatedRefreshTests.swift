import Foundation
import MessengerContracts
import MessengerServiceKit
import PostgresNIO
import TestSupport
import Testing

@testable import AuthService

/// A refresh request that comes again with the id of the request that spent its token: the
/// broker delivers a request again when the replica working on it lost its connection (its
/// deadline then counts as passed), and a publisher sends one again when it got no confirm.
@Suite("A refresh request delivered again", .timeLimit(.minutes(1)))
struct RepeatedRefreshTests {
    static let deadlinePassed = ContinuousClock.now - .seconds(1)

    /// A new account's session: its name, its refresh token as a request, and the id of a
    /// request that will spend it.
    static func newSession(_ authenticator: Authenticator) async throws
        -> (name: String, token: RefreshTokenRequest, request: UUID)
    {
        let (name, _) = try await CallerGaveUpTests.newAccount(authenticator)
        let login = try await authenticator.login(
            CallerGaveUpTests.loginRequest(name, CallerGaveUpTests.password), before: nil)
        return (name, try LostCommitTests.request(login.refreshToken), UUID())
    }

    /// Until the fifty-first session every copy answered 401, and a caller whose first answer
    /// was lost with its replica was logged out.
    @Test("a copy with its deadline passed gets another successor; once one is used, presenting another is a reuse")
    func copyAnsweredWithAnotherSuccessor() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5) { authenticator, _ in
            let (name, token, request) = try await Self.newSession(authenticator)
            let first = try await authenticator.refresh(token, requestID: request, before: nil)
            let copy = try await authenticator.refresh(token, requestID: request, before: Self.deadlinePassed)
            #expect(copy.refreshToken != first.refreshToken && copy.user.username == name)
            // The caller took the copy's answer: it refreshes.
            let next = try await authenticator.refresh(
                LostCommitTests.request(copy.refreshToken), requestID: UUID(), before: nil)
            // The first answer's token is superseded: presenting it is a reuse, which ends the session.
            await #expect(throws: ServiceError.self) {
                try await authenticator.refresh(LostCommitTests.request(first.refreshToken), requestID: UUID(), before: nil)
            }
            await #expect(throws: ServiceError.self, "the reuse revoked the family") {
                try await authenticator.refresh(LostCommitTests.request(next.refreshToken), requestID: UUID(), before: nil)
            }
        }
    }

    @Test("once a successor was used, a copy changes nothing and is answered unauthorized")
    func copyAfterTheAnswerWasUsed() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5) { authenticator, _ in
            let (_, token, request) = try await Self.newSession(authenticator)
            let first = try await authenticator.refresh(token, requestID: request, before: nil)
            let next = try await authenticator.refresh(
                LostCommitTests.request(first.refreshToken), requestID: UUID(), before: nil)
            await #expect {
                try await authenticator.refresh(token, requestID: request, before: nil)
            } throws: { error in
                (error as? ServiceError)?.code == .unauthorized
            }
            // Nothing was revoked.
            _ = try await authenticator.refresh(LostCommitTests.request(next.refreshToken), requestID: UUID(), before: nil)
        }
    }

    @Test("a copy coming more than a minute after its token was spent, or past four successors, is answered unauthorized")
    func copiesAreBounded() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5) { authenticator, database in
            let (_, token, request) = try await Self.newSession(authenticator)
            var answers = [try await authenticator.refresh(token, requestID: request, before: nil)]
            for _ in 1..<RefreshTokenStore.successorsPerToken {
                answers.append(try await authenticator.refresh(token, requestID: request, before: nil))
            }
            #expect(Set(answers.map(\.refreshToken)).count == RefreshTokenStore.successorsPerToken)
            await #expect(throws: ServiceError.self, "a fifth successor") {
                try await authenticator.refresh(token, requestID: request, before: nil)
            }

            // Another session: its token spent two minutes ago.
            let (_, otherToken, otherRequest) = try await Self.newSession(authenticator)
            let otherAnswer = try await authenticator.refresh(otherToken, requestID: otherRequest, before: nil)
            try await database.query(
                "UPDATE refresh_tokens SET spent_at = spent_at - interval '2 minutes' WHERE spent_by = \(otherRequest)",
                logger: TestEnvironment.logger)
            await #expect(throws: ServiceError.self, "a copy two minutes late") {
                try await authenticator.refresh(otherToken, requestID: otherRequest, before: nil)
            }
            // Nothing was revoked: the answers given refresh.
            _ = try await authenticator.refresh(
                LostCommitTests.request(otherAnswer.refreshToken), requestID: UUID(), before: nil)
            _ = try await authenticator.refresh(
                LostCommitTests.request(answers[0].refreshToken), requestID: UUID(), before: nil)
        }
    }

    /// Pruned with the other spent tokens a day past its expiry, the token's row took the link
    /// between its successors with it (`replaces` is set to NULL), and a second chain could
    /// start from the answer the caller did not take (a review).
    @Test("a spent token with two live successors outlives its expiry in the pruning, and still links them")
    func pruningKeepsTheLink() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5) { authenticator, database in
            let logger = TestEnvironment.logger
            let (_, token, request) = try await Self.newSession(authenticator)
            let first = try await authenticator.refresh(token, requestID: request, before: nil)
            let copy = try await authenticator.refresh(token, requestID: request, before: nil)
            try await database.query(
                "UPDATE refresh_tokens SET expires_at = now() - interval '3 days' WHERE spent_by = \(request)", logger: logger)
            let pruner = AuthPruner(
                client: database,
                revocations: SessionRevocations(client: database, accessTokenLifetime: .seconds(900), logger: logger),
                loginWindow: .seconds(600), registrationWindow: .seconds(600), outbox: OutboxSignal(), logger: logger)
            try await pruner.prune()
            var kept = 0
            for try await count in try await database.query(
                "SELECT count(*) FROM refresh_tokens WHERE spent_by = \(request)", logger: logger
            ).decode(Int.self) {
                kept = count
            }
            #expect(kept == 1)
            _ = try await authenticator.refresh(LostCommitTests.request(copy.refreshToken), requestID: UUID(), before: nil)
            await #expect(throws: ServiceError.self, "the answer not taken is superseded: a reuse") {
                try await authenticator.refresh(LostCommitTests.request(first.refreshToken), requestID: UUID(), before: nil)
            }
        }
    }
}
