import MessengerContracts
import Synchronization

/// Where auth's last answer about revoked sessions left off (``RevokedSessionList/next``), so
/// that the next sync asks from there: a gateway cut off from the broker for longer than a
/// token lives is then told of the sessions ended meanwhile, whose announcements it missed
/// (docs/auth.md, "Revoked sessions").
final class RevokedSessionsPlace: Sendable {
    private let place = Mutex<String?>(nil)
    /// Answers asked for at most in one sync: more wait for the next one.
    static let answersPerSync = 50

    /// Asks from the place for answers until auth says none follow (at most
    /// ``answersPerSync``), handing each to `take` before the place moves past it. A failed
    /// ask leaves the place where the last answer taken left it, but a place auth refuses
    /// (`invalid_argument`: one from another version of auth) is dropped, and the next sync
    /// starts afresh.
    func sync(
        ask: (RevokedSessionsRequest) async throws -> RevokedSessionList, take: (RevokedSessionList) async -> Void
    ) async throws {
        for _ in 0..<Self.answersPerSync {
            let answer: RevokedSessionList
            do {
                answer = try await ask(RevokedSessionsRequest(endedSince: self.place.withLock { $0 }))
            } catch let error as ServiceError where error.code == .invalidArgument {
                self.place.withLock { $0 = nil }
                throw error
            }
            await take(answer)
            guard let next = answer.next else { return }
            self.place.withLock { $0 = next }
            guard answer.more == true else { return }
        }
    }
}
