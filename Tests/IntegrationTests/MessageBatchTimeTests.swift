import Foundation
import MessengerContracts
import MessengerPostgres
import TestSupport
import Testing

@testable import MessagingService

/// The time of the messages of one `create_message` batch (``Conversations/createMessages(_:)``).
@Suite("The time of a batch's messages", .timeLimit(.minutes(1)))
struct MessageBatchTimeTests {
    /// A thread dated an hour ahead (a replica whose clock ran fast wrote to it) and another
    /// thread, written in one batch. Until the fifty-fourth session every message of the batch,
    /// and every thread it touched, took the latest activity of all its threads (a review).
    @Test("a thread dated ahead dates only its own messages ahead, not the other threads' of the batch")
    func eachThreadItsOwnTime() async throws {
        let logger = TestEnvironment.logger
        try await withFreshSchema("batch_time", migrations: MessagingMigrations.all) { database, _ in
            let (owner, ann) = (UUID(), UUID())
            try await MessagingTestbed.withConversations(on: database, users: [owner, ann], storedIn: database) {
                conversations in
                func group(_ title: String) async throws -> UUID {
                    try await conversations.createConversation(
                        CreateConversationRequest(type: .group, memberIds: [EntityID(ann)], title: title),
                        actor: owner, requestID: UUID(), deadline: nil
                    ).thread.id.uuid
                }
                let (ahead, other) = (try await group("ahead"), try await group("other"))
                try await database.query(
                    "UPDATE threads SET last_activity_at = now() + interval '1 hour' WHERE id = \(ahead)", logger: logger)
                let before = Date()
                let results = try await conversations.createMessages(
                    [ahead, other].map { thread in
                        MessageCommand(
                            request: CreateMessageRequest(threadId: EntityID(thread), clientMessageId: "\(UUID())", body: "hi"),
                            caller: owner)
                    })
                #expect(results.allSatisfy { (try? $0.get()) != nil })
                var times: [UUID: (created: Date, activity: Date)] = [:]
                for try await (thread, created, activity) in try await database.query(
                    """
                    SELECT t.id, m.created_at, t.last_activity_at FROM messages m JOIN threads t ON t.id = m.thread_id
                    """, logger: logger
                ).decode((UUID, Date, Date).self) { times[thread] = (created, activity) }
                let (aheadTimes, otherTimes) = (try #require(times[ahead]), try #require(times[other]))
                #expect(aheadTimes.created > before.addingTimeInterval(3_000), "\(aheadTimes)")
                #expect(aheadTimes.activity == aheadTimes.created)
                #expect(otherTimes.created < before.addingTimeInterval(60), "\(otherTimes)")
                #expect(otherTimes.activity == otherTimes.created)
            }
        }
    }
}
