import Foundation
import TestSupport
import Testing
import ThreadedIO

@testable import MessengerAMQP

@Suite("AMQP commands drained together with one that fails", .timeLimit(.minutes(2)))
struct AMQPDrainedCommandsTests {
    @Test("a publish queued right behind a refused declaration is still published and confirmed")
    func publishBehindRefusedDeclaration() async throws {
        try await withAMQPConnection { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.drained")
            // Both in one send, so that the connection's thread drains them in one round: the
            // refused declaration drops the connection while the publish is still to be handled.
            let refused = Promise<Void>()
            let confirmed = Promise<Void>()
            let conflicting = AMQPTopology(queues: [.init(queue, arguments: ["x-message-ttl": 5])])
            let message = AMQPMessage(exchange: exchange, routingKey: queue, body: Data("behind".utf8))
            #expect(
                connection.publishMailbox.send(contentsOf: [
                    .declare(conflicting, refused), .publish(PendingPublish(message: message, promise: confirmed)),
                ]))
            await #expect(throws: AMQPError.self) { try await refused.value() }
            try await withTimeout(.seconds(15)) { try await confirmed.value() }
            #expect(try await takeOneMessage(connection, from: queue).body == Data("behind".utf8))
        }
    }
}
