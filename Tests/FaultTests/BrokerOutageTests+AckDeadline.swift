import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import DeliveryService

extension BrokerOutageTests {
    /// `ack_events` waits for its receipts' confirms inside its transaction. Until the
    /// forty-third session the wait had no bound: while the broker held the publishes, the ack
    /// held its pool connection for as long as the outage lasted. It now gives up at the RPC's
    /// deadline, answers `unavailable` and rolls back; the retry after the outage acknowledges.
    /// (The receipts go to the real `delivery.events` queue, for users no one else knows.)
    @Test("an ack whose receipts the broker does not confirm gives up at its deadline and rolls back")
    func ackGivesUpAtItsDeadlineUnderAnAlarm() async throws {
        try await withFreshSchema("ack_deadline", migrations: DeliveryMigrations.all) { database, _ in
            try await withAMQPConnection(name: "ack-deadline") { connection in
                let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
                let publisher = PushPublisher(amqp: connection, delays: [.seconds(600)])
                let (recipient, sender, message) = (UUID(), UUID(), UUID())
                let created = IncomingEvent(
                    id: UUID(), occurredAt: Date(), actor: sender, name: "MESSAGE_CREATED", threadID: UUID(),
                    recipients: [recipient],
                    data: .object([
                        "message": .object([
                            "id": .string(EntityID(message).description), "seq": .number(1),
                            "senderId": .string(EntityID(sender).description),
                        ])
                    ]))
                let seq = try #require(try await log.record([created]).first?.seq)

                try TestHelpers.infra("rabbitmq-memory-alarm", "on")
                let started = ContinuousClock.now
                var failure: (any Error)?
                do {
                    do {
                        _ = try await withTimeout(.seconds(20)) {
                            try await log.acknowledge(user: recipient, upToSeq: seq) { receipts in
                                try await publisher.sendToConsumer(receipts, before: .now + .seconds(1))
                            }
                        }
                    } catch {
                        failure = error
                    }
                    try TestHelpers.infra("rabbitmq-memory-alarm", "off")
                } catch {
                    try? TestHelpers.infra("rabbitmq-memory-alarm", "off")
                    throw error
                }
                let waited = ContinuousClock.now - started
                #expect((failure as? ServiceError)?.code == .unavailable, "\(String(describing: failure))")
                #expect(waited < .seconds(10), "the ack waited \(waited)")
                // Rolled back: the event is still unacknowledged.
                #expect(try await log.events(user: recipient, afterSeq: 0, limit: 10).events.count == 1)

                let acked = try await log.acknowledge(user: recipient, upToSeq: seq) { receipts in
                    try await publisher.sendToConsumer(receipts, before: .now + .seconds(10))
                }
                #expect(acked == seq)
                #expect(try await log.events(user: recipient, afterSeq: 0, limit: 10).events.isEmpty)
            }
        }
    }
}
