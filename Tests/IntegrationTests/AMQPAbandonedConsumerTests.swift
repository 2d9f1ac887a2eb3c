import Foundation
import MessengerAMQP
import TestSupport
import Testing

/// A consumer whose reader stops without ``AMQPConsumer/cancel()`` or ``AMQPConsumer/close()``:
/// until the forty-eighth session its channel stayed open, and every message the broker handed
/// it was rejected back to the queue and handed to it again, as fast as the broker could, for as
/// long as the connection lasted.
@Suite("AMQP consumers their reader abandons", .timeLimit(.minutes(2)))
struct AMQPAbandonedConsumerTests {
    @Test("a consumer whose reading task is cancelled gives up its channel, and its messages go to another consumer")
    func cancelledReaderClosesTheChannel() async throws {
        try await withAMQPConnection(name: "test-abandoned") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.abandoned")
            let reader = Task {
                for await delivery in connection.consume(queue: queue) { delivery.ack() }
            }
            #expect(
                await TestHelpers.eventually(timeout: .seconds(10)) { (try? BrokerAdmin.consumerCount(queue)) == 1 },
                "the consumer started")
            reader.cancel()
            await reader.value
            #expect(
                await TestHelpers.eventually(timeout: .seconds(10)) { (try? BrokerAdmin.consumerCount(queue)) == 0 },
                "the abandoned consumer's channel closed")
            try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("kept".utf8)))
            #expect(try await takeOneMessage(connection, from: queue).body == Data("kept".utf8))
        }
    }

    @Test("a message reaching a consumer whose reader is gone goes back to the queue, once, with the channel")
    func deliveryToAbandonedConsumer() async throws {
        try await withAMQPConnection(name: "test-abandoned-delivery") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.abandoned.delivery")
            let consumer = connection.consume(queue: queue)
            #expect(
                await TestHelpers.eventually(timeout: .seconds(10)) { (try? BrokerAdmin.consumerCount(queue)) == 1 },
                "the consumer started")
            // Published at once, so it may reach the consumer before the close the cancelled
            // sequence asks for: the delivery then finds the reader gone.
            let reader = Task { for await delivery in consumer { delivery.ack() } }
            reader.cancel()
            await reader.value
            try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("back".utf8)))
            #expect(
                await TestHelpers.eventually(timeout: .seconds(10)) { (try? BrokerAdmin.consumerCount(queue)) == 0 },
                "the abandoned consumer's channel closed")
            let delivery = try await takeOneMessage(connection, from: queue)
            #expect(delivery.body == Data("back".utf8))
        }
    }
}
