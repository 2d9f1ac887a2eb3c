import Foundation
import MessengerAMQP
import TestSupport
import Testing

@Suite("AMQP messages over the broker's size limit", .timeLimit(.minutes(2)))
struct AMQPMessageSizeTests {
    @Test("a message over maximumMessageSize is refused before it is sent, and the connection goes on")
    func oversizedMessageIsRefused() async throws {
        try await withAMQPConnection(name: "test-size", configuring: { $0.maximumMessageSize = 1024 }) { connection in
            let exchange = "test.direct"
            let queue = TestEnvironment.uniqueName("test.size")
            try await connection.declare(
                AMQPTopology(
                    exchanges: [.init(exchange, kind: .direct)], queues: [.init(queue, arguments: testQueueArguments)],
                    bindings: [.init(queue: queue, exchange: exchange, routingKey: queue)]))
            let oversized = AMQPMessage(exchange: exchange, routingKey: queue, body: Data(count: 1025))
            await #expect {
                try await connection.publish(oversized)
            } throws: { error in
                (error as? AMQPError)?.code == .protocolError
            }
            #expect(throws: AMQPError.self) { try connection.startPublishing([oversized]) }
            try await withTimeout(.seconds(10)) {
                try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data(count: 1024)))
            }
            let consumer = connection.consume(queue: queue)
            let delivery = try await withTimeout(.seconds(10)) {
                var iterator = consumer.makeAsyncIterator()
                return try #require(await iterator.next())
            }
            #expect(delivery.body.count == 1024)
            delivery.ack()
            consumer.cancel()
        }
    }
}
