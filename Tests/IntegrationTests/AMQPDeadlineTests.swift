import Foundation
import TestSupport
import Testing
import ThreadedIO

@testable import MessengerAMQP

@Suite("AMQP messages with a deadline", .timeLimit(.minutes(2)))
struct AMQPDeadlineTests {
    @Test("a message still waiting when its deadline passes is dropped, and its caller told; the rest go out")
    func staleMessageIsDropped() async throws {
        try await withAMQPConnection { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.deadline")
            let stale = Promise<Void>()
            let fresh = Promise<Void>()
            let now = ContinuousClock.now
            #expect(
                connection.publishMailbox.send(contentsOf: [
                    .publish(
                        PendingPublish(
                            message: AMQPMessage(exchange: exchange, routingKey: queue, body: Data("stale".utf8)), promise: stale,
                            deadline: now - .seconds(1))),
                    .publish(
                        PendingPublish(
                            message: AMQPMessage(exchange: exchange, routingKey: queue, body: Data("fresh".utf8)), promise: fresh,
                            deadline: now + .seconds(30))),
                ]))
            await #expect { try await stale.value() } throws: { ($0 as? AMQPError)?.code == .timeout }
            try await withTimeout(.seconds(10)) { try await fresh.value() }
            let delivery = try await takeOneMessage(connection, from: queue)
            #expect(delivery.body == Data("fresh".utf8))
            // Published with what was left of its 30 s, not more.
            let expiration = try #require(delivery.properties.expiration.flatMap(Int.init))
            #expect(expiration > 0 && expiration <= 30_000)
        }
    }

    /// Messages that may travel together and share a destination go as one batch, sent while
    /// any of its members' callers waits: a member whose deadline has passed is dropped first,
    /// not carried by a fresh one (the first round after an outage gathers both).
    @Test("a stale message is not carried in a batch by a fresh one")
    func staleMemberLeftOutOfTheBatch() async throws {
        try await withAMQPConnection { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.deadline.batch")
            let stale = Promise<Void>()
            let fresh = Promise<Void>()
            let now = ContinuousClock.now
            func message(_ body: String) -> AMQPMessage {
                AMQPMessage(exchange: exchange, routingKey: queue, body: Data(body.utf8)).batched(as: "test.batch")
            }
            #expect(
                connection.publishMailbox.send(contentsOf: [
                    .publish(PendingPublish(message: message("stale"), promise: stale, deadline: now - .seconds(1))),
                    .publish(PendingPublish(message: message("fresh"), promise: fresh, deadline: now + .seconds(30))),
                ]))
            await #expect { try await stale.value() } throws: { ($0 as? AMQPError)?.code == .timeout }
            try await withTimeout(.seconds(10)) { try await fresh.value() }
            let delivery = try await takeOneMessage(connection, from: queue)
            #expect(delivery.body == Data("fresh".utf8), "the stale message went in a batch")
        }
    }
}
