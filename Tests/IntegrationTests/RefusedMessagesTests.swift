import Testing

@testable import DeliveryService

/// ``RefusedMessages``: poison told from a database that refuses every write.
@Suite("Refused domain event messages")
struct RefusedMessagesTests {
    @Test("a message is poison when it keeps failing again after a batch was recorded since its first failure")
    func poisonAfterARecordedBatch() {
        let refused = RefusedMessages()
        #expect(!refused.keptFailing("a"))
        // Nothing recorded since: the database may refuse everything.
        #expect(!refused.keptFailing("a"))
        refused.recorded()
        #expect(refused.keptFailing("a"))
        // Forgotten once told: it starts again.
        #expect(refused.count == 0)
        #expect(!refused.keptFailing("a"))
    }

    @Test("a batch recorded before a message's first failure does not count")
    func onlyLaterBatches() {
        let refused = RefusedMessages()
        refused.recorded()
        #expect(!refused.keptFailing("b"))
        #expect(!refused.keptFailing("b"))
    }

    @Test("past its capacity every message is forgotten")
    func bounded() {
        let refused = RefusedMessages(capacity: 2)
        _ = refused.keptFailing("a")
        _ = refused.keptFailing("b")
        _ = refused.keptFailing("c")
        #expect(refused.count == 1)
        refused.recorded()
        #expect(!refused.keptFailing("a"))
        #expect(refused.keptFailing("c"))
    }
}
