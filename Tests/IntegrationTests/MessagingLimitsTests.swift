import Foundation
import MessengerContracts
import MessengerServiceKit
import TestSupport
import Testing

@testable import MessagingService

/// The contract's limits on what users write are configurable, its values by default
/// (protocol.md, "Conventions"; ``MessagingRules``).
@Suite("Messaging limits")
struct MessagingLimitsTests {
    @Test("with nothing set, messaging's limits are the contract's")
    func defaults() throws {
        let rules = try MessagingRules(environment: ServiceEnvironment([:]))
        #expect(rules == MessagingRules())
        let limits: [Int] = [
            rules.maximumBodyLength, rules.maximumClientMessageIDLength, rules.maximumTitleLength, rules.maximumGroupSize,
            rules.maximumDeleteBatch,
        ]
        #expect(limits == [4000, 64, 128, 256, 100])
    }

    @Test("each limit is read from its variable, and the checks hold to it")
    func configured() throws {
        let rules = try MessagingRules(
            environment: ServiceEnvironment([
                "MESSAGE_BODY_MAX_LENGTH": "10", "CLIENT_MESSAGE_ID_MAX_LENGTH": "100", "GROUP_TITLE_MAX_LENGTH": "5",
                "GROUP_MAX_MEMBERS": "3", "DELETE_MESSAGE_MAX_IDS": "7",
            ]))
        #expect(rules.maximumGroupSize == 3 && rules.maximumDeleteBatch == 7)
        #expect(try rules.body("  0123456789  ") == "0123456789")
        #expect(throws: ServiceError.invalidArgument("body must be at most 10 characters")) {
            try rules.body("0123456789a")
        }
        #expect(try rules.clientMessageID(String(repeating: "c", count: 100)).count == 100)
        #expect(throws: ServiceError.self) { try rules.clientMessageID(String(repeating: "c", count: 101)) }
        #expect(try rules.title("plans") == "plans")
        #expect(throws: ServiceError.self) { try rules.title("travel") }
    }

    @Test("a limit out of its range stops the start, naming its variable")
    func outOfRange() throws {
        for (variable, value) in [
            ("MESSAGE_BODY_MAX_LENGTH", "0"), ("MESSAGE_BODY_MAX_LENGTH", "16001"), ("CLIENT_MESSAGE_ID_MAX_LENGTH", "256"),
            ("GROUP_TITLE_MAX_LENGTH", "513"), ("GROUP_MAX_MEMBERS", "1"), ("GROUP_MAX_MEMBERS", "1001"),
            ("DELETE_MESSAGE_MAX_IDS", "401"), ("DELETE_MESSAGE_MAX_IDS", "many"),
        ] {
            #expect {
                try MessagingRules(environment: ServiceEnvironment([variable: value]))
            } throws: { error in
                (error as? ConfigurationError)?.variable == variable
            }
        }
    }

    @Test("the commands hold to the configured group size and delete batch", .timeLimit(.minutes(1)))
    func commandsHoldToTheLimits() async throws {
        try await withFreshSchema("limits", migrations: MessagingMigrations.all) { database, _ in
            let (owner, ann, bob, cy) = (UUID(), UUID(), UUID(), UUID())
            try await MessagingTestbed.withConversations(on: database, users: [owner, ann, bob, cy], storedIn: database) {
                conversations in
                var limited = conversations
                limited.rules.maximumGroupSize = 3
                limited.rules.maximumDeleteBatch = 2
                func group(_ members: [UUID]) async throws -> UUID {
                    try await limited.createConversation(
                        CreateConversationRequest(type: .group, memberIds: members.map { EntityID($0) }, title: "plans"),
                        actor: owner, requestID: UUID(), deadline: nil
                    ).thread.id.uuid
                }
                await #expect(throws: ServiceError.invalidArgument("memberIds: a group has 2 to 3 members, the creator included"))
                {
                    try await group([ann, bob, cy])
                }
                let thread = try await group([ann, bob])
                let sent = try await limited.createMessages(
                    (0..<3).map { n in
                        MessageCommand(
                            request: CreateMessageRequest(threadId: EntityID(thread), clientMessageId: "m\(n)", body: "hi"),
                            caller: owner)
                    }
                ).map { try $0.get() }
                #expect(sent.count == 3)
                let ids = try await database.query(
                    "SELECT id FROM messages WHERE thread_id = \(thread) ORDER BY seq", logger: TestEnvironment.logger
                ).decode(UUID.self).reduce(into: [UUID]()) { $0.append($1) }
                func deleting(_ ids: some Sequence<UUID>) throws -> DeleteMessagesRequest {
                    let list = ids.map { "\"\($0.uuidString.lowercased())\"" }.joined(separator: ",")
                    return try MessengerJSON.decode(DeleteMessagesRequest.self, from: Data("{\"messageIds\":[\(list)]}".utf8))
                }
                await #expect(throws: ServiceError.invalidArgument("messageIds must list 1 to 2 messages")) {
                    try await limited.deleteMessages(try deleting(ids), actor: owner)
                }
                _ = try await limited.deleteMessages(try deleting(ids.prefix(2)), actor: owner)
            }
        }
    }
}
