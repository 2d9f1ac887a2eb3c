import Foundation
import TestSupport
import Testing
import ThreadedIO

@testable import MessengerAMQP

/// A message the broker refuses for a reason the client does not check before sending (here an
/// exchange that does not exist) closes the publishing channel without saying which message it
/// was. Until the forty-eighth session it was published again after every reconnect, for ever,
/// and every publish behind it waited with it.
@Suite("AMQP messages the broker refuses", .timeLimit(.minutes(2)))
struct AMQPRefusedMessageTests {
    @Test("the refused message alone fails; the messages around it are confirmed and delivered")
    func refusedMessageFailsAlone() async throws {
        try await withAMQPConnection(name: "test-refused") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.refused")
            let missing = TestEnvironment.uniqueName("test.no-such-exchange")
            let bodies = ["before", "poison", "after-1", "after-2"]
            let promises = bodies.map { _ in Promise<Void>() }
            #expect(
                connection.publishMailbox.send(
                    contentsOf: zip(bodies, promises).map { body, promise in
                        .publish(
                            PendingPublish(
                                message: AMQPMessage(
                                    exchange: body == "poison" ? missing : exchange, routingKey: queue, body: Data(body.utf8)),
                                promise: promise))
                    }))
            for (body, promise) in zip(bodies, promises) {
                if body == "poison" {
                    await #expect {
                        try await withTimeout(.seconds(20)) { try await promise.value() }
                    } throws: { error in
                        (error as? AMQPError)?.code == .protocolError
                            && (error as? AMQPError)?.message.contains("404") == true
                    }
                } else {
                    try await withTimeout(.seconds(20)) { try await promise.value() }
                }
            }
            // And the connection goes on: a publish after it is confirmed as usual.
            try await withTimeout(.seconds(10)) {
                try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("later".utf8)))
            }
            // Those in flight with the refused message may come twice (at least once).
            let expected: Set = ["before", "after-1", "after-2", "later"]
            let consumer = connection.consume(queue: queue)
            defer { consumer.cancel() }
            let received = try await withTimeout(.seconds(10)) {
                var received: Set<String> = []
                for await delivery in consumer {
                    delivery.ack()
                    received.insert(String(decoding: delivery.body, as: UTF8.self))
                    if expected.isSubset(of: received) { break }
                }
                return received
            }
            #expect(received == expected)
        }
    }
}
