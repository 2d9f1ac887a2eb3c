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

    /// librabbitmq-c stops at a short string over 255 bytes after the method frame went out;
    /// until the forty-fourth session that read as a lost connection, and the message was
    /// republished, and failed, about ten times a second, holding every publish behind it.
    @Test("a message whose properties cannot be encoded is refused before it is sent, and the connection goes on")
    func unencodablePropertiesAreRefused() async throws {
        try await withAMQPConnection(name: "test-properties") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.properties")
            let longID = AMQPMessage(
                exchange: exchange, routingKey: queue, body: Data("x".utf8),
                properties: AMQPProperties(messageID: String(repeating: "é", count: 150)))
            let bigHeaders = AMQPMessage(
                exchange: exchange, routingKey: queue, body: Data("x".utf8),
                properties: AMQPProperties(headers: ["big": .bytes(Array(repeating: 1, count: 200_000))]))
            // Its exchange or routing key over 255 bytes too (the forty-sixth session's review).
            let longKey = AMQPMessage(exchange: exchange, routingKey: String(repeating: "k", count: 256), body: Data())
            for message in [longID, bigHeaders, longKey] {
                await #expect {
                    try await withTimeout(.seconds(5)) { try await connection.publish(message) }
                } throws: { error in
                    (error as? AMQPError)?.code == .protocolError
                }
            }
            try await withTimeout(.seconds(10)) {
                try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("ok".utf8)))
            }
            #expect(try await takeOneMessage(connection, from: queue).body == Data("ok".utf8))
        }
    }
}
