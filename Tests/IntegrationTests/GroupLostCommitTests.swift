import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO
import TestSupport
import Testing

@testable import MessagingService

/// A command whose `COMMIT` PostgreSQL carried out while the connection was lost before its
/// answer came (a restart, a failover, the network): a proxy between messaging and PostgreSQL
/// drops that answer and closes the connection.
@Suite("A command whose commit went unanswered", .timeLimit(.minutes(1)))
struct GroupLostCommitTests {
    /// Until the fifty-fourth session the group was answered 503 "retry" although it was
    /// stored, and the client's retry, a new request, made a second one (a review).
    @Test("a group whose commit went unanswered is answered as created, and stored once")
    func committedGroupIsAnswered() async throws {
        try await Self.withConversations(cutAfter: "COMMIT") { createGroup, stored in
            let created = try await createGroup()
            #expect(try await stored().groups == [created.thread.id.uuid])
            #expect(created.thread.memberIds.count == 3 && created.thread.title == "plans")
        }
    }

    @Test("a group whose connection was lost before its commit is answered unavailable, and not stored")
    func uncommittedGroupIsRefused() async throws {
        try await Self.withConversations(cutAfter: "INSERT INTO thread_members") { createGroup, stored in
            var failure: (any Error)?
            do { _ = try await createGroup() } catch { failure = error }
            #expect(failure.map(Database.isUnavailable) == true, "answered \(String(describing: failure))")
            let (groups, claims) = try await stored()
            #expect(groups.isEmpty)
            #expect(claims == 0, "the request's claim stayed: a copy of it would not run")
        }
    }

    /// A group's creation by ``Conversations`` on a connection through a proxy that drops the
    /// answer to the first request carrying `marker`, and a look at the groups and the request
    /// claims stored.
    static func withConversations(
        cutAfter marker: String,
        _ body: (_ createGroup: () async throws -> ThreadEnvelope, _ stored: () async throws -> (groups: [UUID], claims: Int))
            async throws -> Void
    ) async throws {
        try await withFreshSchema("lost_commit", migrations: MessagingMigrations.all) { database, schema in
            var url = try #require(URLComponents(string: TestEnvironment.databaseURL))
            let proxy = try await CuttingProxy(to: url.host ?? "127.0.0.1", port: url.port ?? 5432)
            url.port = proxy.port
            let proxied = try DatabaseConfiguration(url: try #require(url.string), schema: schema).makeDatabase(
                logger: TestEnvironment.logger)
            let logger = TestEnvironment.logger
            let (owner, ann, bob) = (UUID(), UUID(), UUID())
            try await whileRunning(proxied) {
                try await MessagingTestbed.withConversations(on: proxied, users: [owner, ann, bob], storedIn: database) {
                    conversations in
                    proxy.cutAfterRequest(containing: marker)
                    let create = {
                        try await conversations.createConversation(
                            CreateConversationRequest(type: .group, memberIds: [EntityID(ann), EntityID(bob)], title: "plans"),
                            actor: owner, requestID: UUID(), deadline: .now + .seconds(10))
                    }
                    try await body(create) {
                        #expect(!proxy.isArmed, "no answer was dropped")
                        var stored: [UUID] = []
                        for try await id in try await database.query(
                            "SELECT id FROM threads WHERE type = 'GROUP'", logger: logger
                        ).decode(UUID.self) { stored.append(id) }
                        var claims = 0
                        for try await count in try await database.query(
                            "SELECT count(*) FROM handled_requests", logger: logger
                        ).decode(Int.self) { claims = count }
                        return (stored, claims)
                    }
                }
            }
            try await proxy.close()
        }
    }
}
