import Foundation
import MessengerContracts
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing

@testable import DeliveryService

/// A page of `sync` (and of a gateway's replay) is bounded by its events' bytes as well as by
/// their count (``EventLog/events(user:afterSeq:limit:includeAcknowledged:acknowledgedSince:acknowledgedAfter:)``).
@Suite("Pages of events", .timeLimit(.minutes(1)))
struct EventPageTests {
    @Test("a page stops once its events' data passes a megabyte, with more to come; a larger event comes alone")
    func pagesBoundedInBytes() async throws {
        try await withFreshSchema("event_pages", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let recipient = UUID()
            // 400 KB each: two fit in a megabyte, three do not.
            var seqs = try await log.recordMessages(5, to: recipient, bodyLength: 400_000)
            seqs += try await log.recordMessages(1, to: recipient, bodyLength: 1_500_000)
            var pages: [[Int64]] = []
            var after: Int64 = 0
            while true {
                let page = try await log.events(user: recipient, afterSeq: after, limit: 500)
                pages.append(page.events.map(\.seq))
                guard page.hasMore, let last = page.events.last?.seq else { break }
                after = last
            }
            #expect(pages == [Array(seqs[0...1]), Array(seqs[2...3]), [seqs[4]], [seqs[5]]])
        }
    }

    @Test("with acknowledgedSince, a page holds the unacknowledged events and the acknowledged ones stored since then")
    func acknowledgedSince() async throws {
        try await withFreshSchema("event_pages_since", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let recipient = UUID()
            let old = try await log.recordMessages(2, to: recipient)
            try await Task.sleep(for: .milliseconds(50))
            let since = Date()
            try await Task.sleep(for: .milliseconds(50))
            let new = try await log.recordMessages(2, to: recipient)
            _ = try await log.acknowledge(user: recipient, upToSeq: new[0]) { _ in }
            let unacknowledged = new[1]
            func page(_ includeAcknowledged: Bool, _ since: Date?) async throws -> [Int64] {
                try await log.events(
                    user: recipient, afterSeq: 0, limit: 500, includeAcknowledged: includeAcknowledged,
                    acknowledgedSince: since
                ).events.map(\.seq)
            }
            #expect(try await page(false, nil) == [unacknowledged])
            #expect(try await page(false, since) == [unacknowledged], "acknowledgedSince alone changes nothing")
            #expect(try await page(true, nil) == old + new)
            #expect(try await page(true, since) == new)
        }
    }

    @Test("with acknowledgedAfter, a page holds the unacknowledged events and the acknowledged ones above that seq")
    func acknowledgedAfter() async throws {
        try await withFreshSchema("event_pages_after", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let recipient = UUID()
            let seqs = try await log.recordMessages(5, to: recipient)
            _ = try await log.acknowledge(user: recipient, upToSeq: seqs[3]) { _ in }
            func page(after: Int64, acknowledgedAfter: Int64?) async throws -> [Int64] {
                try await log.events(user: recipient, afterSeq: after, limit: 500, acknowledgedAfter: acknowledgedAfter)
                    .events.map(\.seq)
            }
            #expect(try await page(after: 0, acknowledgedAfter: nil) == [seqs[4]])
            #expect(try await page(after: 0, acknowledgedAfter: seqs[1]) == Array(seqs[2...]))
            #expect(try await page(after: seqs[2], acknowledgedAfter: seqs[1]) == Array(seqs[3...]), "after afterSeq only")
            #expect(try await page(after: 0, acknowledgedAfter: seqs[4]) == [seqs[4]], "unacknowledged ones still")
        }
    }

    /// A statement that waits for a recipient's sequence row (an ack holds it) stores its
    /// events when it gets it: `acknowledgedSince` must count them from then.
    @Test("an event whose recording waited for its recipient's lock is stored when it got it, for acknowledgedSince")
    func storedWhenTheLockCame() async throws {
        try await withFreshSchema("event_pages_lock", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let recipient = UUID()
            _ = try await log.recordMessages(1, to: recipient)
            let released = await Self.holdingForASecond(
                "SELECT 1 FROM user_sequences WHERE user_id = \(recipient) FOR UPDATE", on: database)
            let recorded = try await log.recordMessages(1, to: recipient)
            let releasedAt = try await released.value
            _ = try await log.acknowledge(user: recipient, upToSeq: recorded[0]) { _ in }
            let page = try await log.events(
                user: recipient, afterSeq: 1, limit: 500, includeAcknowledged: true,
                acknowledgedSince: releasedAt.addingTimeInterval(-0.2))
            #expect(page.events.map(\.seq) == recorded)
        }
    }

    /// A batch with a `MESSAGE_SEEN` marks the seer's deliveries seen after it wrote its own
    /// rows, and waits there for a row an ack holds: its events are stored when it commits.
    @Test("an event recorded with a seen mark that waited for a delivery's lock is stored when the batch committed")
    func storedWhenTheSeenMarkWasDone() async throws {
        try await withFreshSchema("event_pages_seen_lock", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let (sender, seer, recipient, thread) = (UUID(), UUID(), UUID(), UUID())
            let message = UUID()
            func created(_ id: UUID, seq: Int, to recipients: [UUID]) -> IncomingEvent {
                IncomingEvent(
                    id: UUID(), occurredAt: Date(), actor: sender, name: "MESSAGE_CREATED", threadID: thread,
                    recipients: recipients,
                    data: .object([
                        "message": .object([
                            "id": .string(EntityID(id).description), "seq": .number(Double(seq)),
                            "senderId": .string(EntityID(sender).description), "body": .string("hi"),
                        ])
                    ]))
            }
            _ = try await log.record([created(message, seq: 1, to: [seer, recipient])])
            let released = await Self.holdingForASecond(
                "SELECT 1 FROM deliveries WHERE user_id = \(seer) FOR UPDATE", on: database)
            let seen = IncomingEvent(
                id: UUID(), occurredAt: Date(), actor: seer, name: "MESSAGE_SEEN", threadID: thread, recipients: [sender],
                data: .object([
                    "threadId": .string(EntityID(thread).description), "messageId": .string(EntityID(message).description),
                    "userId": .string(EntityID(seer).description), "at": .string(Timestamp.format(Date())),
                ]))
            let recorded = try await log.record([created(UUID(), seq: 2, to: [recipient]), seen])
            let releasedAt = try await released.value
            let seq = try #require(recorded.first { $0.userID == recipient }?.seq)
            _ = try await log.acknowledge(user: recipient, upToSeq: seq) { _ in }
            // A batch that waited at most `restampAfter` keeps its first stamp: the bound allows
            // that much (with 0.2 s for the clocks); the stamp from before the whole wait (a
            // second) is still outside it. With 0.2 s alone the test failed about once in ten
            // full runs on a loaded machine, where the wait after the write can be shorter.
            let wait = EventLog.restampAfter.components
            let margin = 0.2 + Double(wait.seconds) + Double(wait.attoseconds) / 1e18
            let page = try await log.events(
                user: recipient, afterSeq: 1, limit: 500, includeAcknowledged: true,
                acknowledgedSince: releasedAt.addingTimeInterval(-margin))
            #expect(page.events.map(\.seq) == [seq])
        }
    }

    /// Runs `locking` in a transaction that holds what it locked for a second; returns once
    /// the locks are taken, with a task whose value is when they were released.
    static func holdingForASecond(_ locking: PostgresQuery, on database: Database) async -> Task<Date, any Error> {
        let (locked, lockTaken) = AsyncStream.makeStream(of: Void.self)
        let released = Task {
            try await database.transaction(logger: TestEnvironment.logger) { connection in
                _ = try await connection.query(locking, logger: TestEnvironment.logger).collect()
                lockTaken.yield()
                try await Task.sleep(for: .seconds(1))
                return Date()
            }
        }
        for await _ in locked { break }
        return released
    }
}
