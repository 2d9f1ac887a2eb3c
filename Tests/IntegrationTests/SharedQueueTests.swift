import Foundation
import MessengerAMQP
import MessengerContracts
import TestSupport
import Testing

/// Queues declared by their producers as well as their consumers (``SharedQueue``), on a real
/// broker.
@Suite("Shared queues against RabbitMQ", .timeLimit(.minutes(2)))
struct SharedQueueIntegrationTests {
    static let exchange = "test.shared"

    @Test("an event published before its consumer ever declared anything waits in the queue its producer declared")
    func producerDeclarationKeepsEarlyEvents() async throws {
        let name = TestEnvironment.uniqueName("test.shared")
        // Shaped like delivery.events: single active consumer, poison dead-lettered.
        let shared = SharedQueue(
            name: name, producers: [.messaging], exchange: Self.exchange, exchangeKind: .topic,
            routingKeys: ["\(name).#"], singleActiveConsumer: true, deadLetterQueue: "\(name).dead")
        let declaration = AMQPTopology(declaring: shared, queueArguments: testQueueArguments)

        try await withAMQPConnection(name: "test-producer") { producer in
            try await producer.declare(declaration)
            // Not mandatory, as the outbox relay publishes: without the queue it would be dropped.
            try await producer.publish(
                AMQPMessage(
                    exchange: Self.exchange, routingKey: "\(name).thing_happened.v1", body: Data("early".utf8),
                    properties: AMQPProperties(messageID: "early-1")))
        }
        try await withAMQPConnection(name: "test-consumer") { consumer in
            // The consumer's own declaration is accepted: the same arguments, no PRECONDITION_FAILED.
            try await consumer.declare(
                declaration.merged(with: AMQPTopology(queues: [.init("\(name).dead", arguments: testQueueArguments)])))
            let deliveries = consumer.consume(queue: name)
            let delivery = try await withTimeout(.seconds(10)) {
                var iterator = deliveries.makeAsyncIterator()
                return try #require(await iterator.next())
            }
            #expect(delivery.body == Data("early".utf8))
            #expect(delivery.properties.messageID == "early-1")
            delivery.ack()
            deliveries.cancel()
        }
    }

    @Test("the broker accepts each producer's declaration of the queues its consumers declared")
    func producersMatchDeployedQueues() async throws {
        let queueArguments: [String: AMQPFieldValue] = [
            "x-queue-type": .string(TestEnvironment.value("RABBITMQ_QUEUE_TYPE", default: "classic"))
        ]
        try await withAMQPConnection { connection in
            for service in [ServiceName.messaging, .auth, .delivery] {
                // A declaration with other arguments than the consumer's fails as protocolError.
                try await connection.declare(.sharedQueues(producedBy: service, queueArguments: queueArguments))
            }
        }
    }
}
