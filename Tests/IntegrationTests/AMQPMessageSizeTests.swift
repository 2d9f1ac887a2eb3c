import Foundation
import MessengerAMQP
import TestSupport
import Testing

@Suite("AMQP messages over the broker's size limit", .timeLimit(.minutes(2)))
struct AMQPMessageSizeTests {
    @Test("a message over maximumMessageSize is refused before it is sent, and the connection goes on")
    func oversizedMessageIsRefused() async throws {
        try await withAMQPConnection(name: "test-size", configuring: { $0.maximumMessageSize = 1024 }) { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.size")
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
            #expect(try await takeOneMessage(connection, from: queue).body.count == 1024)
        }
    }
}
