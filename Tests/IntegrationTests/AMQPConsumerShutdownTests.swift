import Foundation
import MessengerAMQP
import ServiceLifecycleTestKit
import TestSupport
import Testing

/// ``AMQPConsumer/runUntilShutdown(_:)``: the body of every consuming service.
@Suite("A consumer as the body of a service", .timeLimit(.minutes(2)))
struct AMQPConsumerShutdownTests {
    @Test("a consumer the broker refuses ends its service with an error, instead of leaving it running deaf")
    func refusedConsumerThrows() async throws {
        try await withAMQPConnection(name: "test-refused") { connection in
            let consumer = connection.consume(queue: TestEnvironment.uniqueName("test.no-such-queue"))
            let error = await #expect(throws: AMQPError.self) {
                try await withTimeout(.seconds(20)) {
                    try await consumer.runUntilShutdown {
                        for await delivery in consumer { delivery.ack() }
                    }
                }
            }
            #expect(error?.code == .protocolError)
        }
    }

    @Test("graceful shutdown ends a consuming service without an error, after what it had received")
    func gracefulShutdownReturns() async throws {
        try await withAMQPConnection(name: "test-graceful") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.graceful")
            try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("one".utf8)))
            let consumer = connection.consume(queue: queue)
            try await testGracefulShutdown { shutdown in
                var received: [Data] = []
                try await consumer.runUntilShutdown {
                    for await delivery in consumer {
                        received.append(delivery.body)
                        delivery.ack()
                        shutdown.triggerGracefulShutdown()
                    }
                }
                #expect(received == [Data("one".utf8)])
            }
        }
    }
}
