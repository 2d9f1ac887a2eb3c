import Foundation
import MessengerContracts
import Testing

@testable import SocketGateway

/// How a gateway asks auth for revoked sessions from where the last answer left off
/// (``RevokedSessionsPlace``).
@Suite("Where a gateway's revoked-session sync left off")
struct RevokedSessionsPlaceTests {
    struct Refused: Error {}

    static func answer(_ next: String?, more: Bool) -> RevokedSessionList {
        RevokedSessionList(
            items: [RevokedSessions(userId: EntityID(UUID()), sessionIds: [EntityID(UUID())], until: Date())], next: next,
            more: more)
    }

    @Test("the first sync asks from nowhere; the next ones from where the last answer left off, page after page")
    func asksFromTheLastPlace() async throws {
        let place = RevokedSessionsPlace()
        var asked: [String?] = []
        var taken = 0
        var script = [
            Self.answer("t0", more: false), Self.answer("p1", more: true), Self.answer("p2", more: true),
            Self.answer("t1", more: false),
        ]
        try await place.sync(
            ask: {
                asked.append($0.endedSince); return script.removeFirst()
            }, take: { _ in taken += 1 })
        try await place.sync(
            ask: {
                asked.append($0.endedSince); return script.removeFirst()
            }, take: { _ in taken += 1 })
        #expect(asked == [nil, "t0", "p1", "p2"])
        #expect(taken == 4)
    }

    @Test("a failed ask leaves the place where the last answer taken left it")
    func failureKeepsThePlace() async throws {
        let place = RevokedSessionsPlace()
        var asked: [String?] = []
        var script: [RevokedSessionList?] = [Self.answer("p1", more: true), nil, Self.answer("t1", more: false)]
        // Answers from the script; nil is a failed ask.
        func ask(_ request: RevokedSessionsRequest) throws -> RevokedSessionList {
            asked.append(request.endedSince)
            guard let answer = script.removeFirst() else { throw Refused() }
            return answer
        }
        await #expect(throws: Refused.self) { try await place.sync(ask: ask, take: { _ in }) }
        try await place.sync(ask: ask, take: { _ in })
        #expect(asked == [nil, "p1", "p1"])
    }

    @Test("an auth that keeps no place (an older one) is asked from nowhere every time; one sync stops after its pages")
    func olderAuthAndPageLimit() async throws {
        let place = RevokedSessionsPlace()
        var asked: [String?] = []
        for _ in 0..<2 {
            try await place.sync(
                ask: {
                    asked.append($0.endedSince); return RevokedSessionList(items: [])
                }, take: { _ in })
        }
        #expect(asked == [nil, nil])
        var answers = 0
        try await place.sync(
            ask: { _ in
                answers += 1; return Self.answer("p\(answers)", more: true)
            }, take: { _ in })
        #expect(answers == RevokedSessionsPlace.answersPerSync)
    }

    @Test("a place auth refuses (another version's) is dropped: the next sync starts afresh")
    func refusedPlaceDropped() async throws {
        let place = RevokedSessionsPlace()
        var asked: [String?] = []
        try await place.sync(
            ask: {
                asked.append($0.endedSince); return Self.answer("odd", more: false)
            }, take: { _ in })
        await #expect(throws: ServiceError.self) {
            try await place.sync(
                ask: { request in
                    asked.append(request.endedSince)
                    throw ServiceError.invalidArgument("endedSince: not a place auth gave")
                }, take: { _ in })
        }
        try await place.sync(
            ask: {
                asked.append($0.endedSince); return Self.answer("t1", more: false)
            }, take: { _ in })
        #expect(asked == [nil, "odd", nil])
    }
}
