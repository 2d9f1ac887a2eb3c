import Foundation
import MessengerContracts
import MessengerPostgres
import TestSupport
import Testing

@testable import AuthService

/// What auth tells a gateway about ended sessions (``SessionRevocations/recent(endedSince:)``),
/// in an auth schema of its own. A gateway cut off from the broker for longer than a token lives
/// missed the announcements of the sessions ended meanwhile, and `revoked_sessions` no longer
/// holds them: until the forty-eighth session it never learnt of them, and its sockets of those
/// sessions stayed open.
@Suite("Ended sessions for a gateway that was away", .timeLimit(.minutes(1)))
struct EndedSessionsSyncTests {
    @Test("the sessions ended since the gateway's place come in pages, none skipped or repeated at one instant")
    func endedSinceInPages() async throws {
        try await withFreshSchema("auth_ended", migrations: AuthMigrations.all) { database, _ in
            let logger = TestEnvironment.logger
            let revocations = SessionRevocations(client: database, accessTokenLifetime: .seconds(900), logger: logger)
            // More sessions than a page, all ended at one instant two hours ago (a batch of
            // expired sessions shares one), and three a second later.
            let instant = SessionRevocations.endedPage + 100
            let user = UUID()
            try await database.query(
                """
                INSERT INTO ended_sessions (family_id, user_id, ended_at)
                SELECT gen_random_uuid(), \(user), now() - interval '2 hours' FROM generate_series(1, \(instant))
                """, logger: logger)
            try await database.query(
                """
                INSERT INTO ended_sessions (family_id, user_id, ended_at)
                SELECT gen_random_uuid(), \(user), now() - interval '2 hours' + interval '1 second' FROM generate_series(1, 3)
                """, logger: logger)
            var ended: Set<UUID> = []
            var twoHoursAgo: Int64 = 0
            let rows = try await database.query(
                "SELECT family_id, (extract(epoch FROM ended_at) * 1000000)::bigint FROM ended_sessions", logger: logger)
            for try await (family, microseconds) in rows.decode((UUID, Int64).self) {
                ended.insert(family)
                twoHoursAgo = twoHoursAgo == 0 ? microseconds : min(twoHoursAgo, microseconds)
            }
            #expect(ended.count == instant + 3)

            // At start there is no place: only the sessions whose tokens may be unexpired.
            let first = try await revocations.recent()
            #expect(first.items.isEmpty)
            #expect(first.more == false)
            // A place within the tokens' lifetime: `revoked_sessions` covers it, nothing is read.
            let recentPlace = try #require(first.next)
            #expect(try await revocations.recent(endedSince: recentPlace).items.isEmpty)

            // A place just before the two hours ago.
            var place: String? = EndedSessionsPlace(microseconds: twoHoursAgo - 1).text
            var seen: [UUID] = []
            var answers = 0
            while let from = place {
                let answer = try await revocations.recent(endedSince: from)
                answers += 1
                for item in answer.items {
                    #expect(item.until < Date(), "a session whose tokens expired is not kept")
                    seen += item.sessionIds.map(\.uuid)
                }
                place = answer.more == true ? answer.next : nil
                #expect(answers <= 2)
            }
            #expect(answers == 2)
            #expect(seen.count == ended.count, "a session was repeated or skipped")
            #expect(Set(seen) == ended)
        }
    }

    @Test("a place auth did not give is refused as invalid_argument")
    func invalidPlace() async throws {
        try await withFreshSchema("auth_ended", migrations: AuthMigrations.all) { database, _ in
            let revocations = SessionRevocations(
                client: database, accessTokenLifetime: .seconds(900), logger: TestEnvironment.logger)
            for text in ["yesterday", "12:not-a-uuid", "", "-300000000000000000", "999999999999999999999"] {
                await #expect {
                    _ = try await revocations.recent(endedSince: text)
                } throws: { error in
                    (error as? ServiceError)?.code == .invalidArgument
                }
            }
        }
    }
}
