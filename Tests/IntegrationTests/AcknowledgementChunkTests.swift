import Foundation
import MessengerContracts
import Synchronization
import TestSupport
import Testing

@testable import DeliveryService

/// `ack_events` acknowledges a user's deliveries a chunk of seqs at a time, each chunk in a
/// transaction of its own (``EventLog/acknowledge(user:upToSeq:before:sendReceipts:)``).
@Suite("Acknowledging in chunks", .timeLimit(.minutes(1)))
struct AcknowledgementChunkTests {
    /// A log in a fresh schema that acknowledges 3 seqs a chunk, and a recipient's 10 messages.
    func withTenMessages(_ body: (EventLog, _ recipient: UUID, _ seqs: [Int64]) async throws -> Void) async throws {
        try await withFreshSchema("ack_chunks", migrations: DeliveryMigrations.all) { database, _ in
            var log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            log.ackChunk = 3
            let recipient = UUID()
            try await body(log, recipient, try await log.recordMessages(10, to: recipient))
        }
    }

    @Test("an ack past a chunk goes chunk by chunk to its end, with every receipt once")
    func chunkByChunk() async throws {
        try await self.withTenMessages { log, recipient, seqs in
            let receipts = Mutex<[[UUID]]>([])
            let acked = try await log.acknowledge(user: recipient, upToSeq: 100) { sent in
                receipts.withLock { $0.append(sent.map(\.id)) }
            }
            #expect(acked == seqs.max())
            let chunks = receipts.withLock { $0 }
            #expect(chunks.map(\.count) == [3, 3, 3, 1])
            #expect(Set(chunks.joined()).count == 10)
            #expect(try await log.events(user: recipient, afterSeq: 0, limit: 100).events.isEmpty)
        }
    }

    @Test("an ack whose deadline passes between chunks keeps the chunks it made and is unavailable; its retry ends it")
    func deadlineBetweenChunks() async throws {
        try await self.withTenMessages { log, recipient, seqs in
            await #expect(throws: ServiceError.self) {
                try await log.acknowledge(user: recipient, upToSeq: 100, before: .now) { _ in }
            }
            // The first chunk stands.
            #expect(try await log.events(user: recipient, afterSeq: 0, limit: 100).events.map(\.seq) == Array(seqs[3...]))
            let acked = try await log.acknowledge(user: recipient, upToSeq: 100, before: .now + .seconds(30)) { _ in }
            #expect(acked == seqs.max())
        }
    }
}
