import Foundation
import MessengerAMQP
import MessengerContracts
import TestSupport
import Testing

@testable import DeliveryService

/// A dead letter's expiration (the event log's retention) against the broker's limit on it.
@Suite("Dead letters' expiration", .timeLimit(.minutes(1)))
struct DeadLetterExpirationTests {
    /// RabbitMQ refuses a per-message expiration over its limit by closing the channel (3.10
    /// takes up to 315,360,000,000 ms, ten years; measured in the fifty-fifth session, after a
    /// review expected 2^32 - 1): the longest retention the settings take must stay under it.
    @Test("the longest retention the settings take (365 days) is an expiration the broker takes")
    func longestRetention() async throws {
        try await withAMQPConnection(name: "test-dead-letter") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.dead_letter")
            let publisher = PushPublisher(amqp: connection, delays: [.seconds(2)])
            let delivery = Delivery(
                userID: UUID(), eventID: EntityID(UUID()), seq: 7, name: "MESSAGE_CREATED", occurredAt: Date(),
                dataJSON: "{}")
            var letter = try publisher.deadLetter(delivery, attempts: 3, retention: .seconds(365 * 86_400))
            #expect(letter.properties.expiration == "31536000000")
            (letter.exchange, letter.routingKey) = (exchange, queue)
            let sent = letter
            try await withTimeout(.seconds(10)) { try await connection.publish(sent) }
            let taken = try await takeOneMessage(connection, from: queue)
            #expect(taken.properties.type == DeadLetter.messageType)
            taken.ack()
        }
    }
}
