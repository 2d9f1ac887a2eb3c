import Foundation
import MessengerAMQP
import Synchronization
import TestSupport
import Testing

@Suite("AMQP client against RabbitMQ", .timeLimit(.minutes(2)))
struct AMQPClientTests {
    static let exchange = "test.direct"

    func declareQueue(_ connection: AMQPConnection, _ name: String, arguments: [String: AMQPFieldValue] = [:]) async throws {
        try await connection.declare(
            AMQPTopology(
                exchanges: [.init(Self.exchange, kind: .direct)],
                queues: [.init(name, arguments: testQueueArguments.merging(arguments) { $1 })],
                bindings: [.init(queue: name, exchange: Self.exchange, routingKey: name)]))
    }

    /// A fresh queue holding one message with `body`, and a consumer of it.
    func queueWithOneMessage(
        _ connection: AMQPConnection, _ prefix: String, body: String
    ) async throws -> (queue: String, consumer: AMQPConsumer) {
        let queue = TestEnvironment.uniqueName(prefix)
        try await self.declareQueue(connection, queue)
        try await connection.publish(AMQPMessage(exchange: Self.exchange, routingKey: queue, body: Data(body.utf8)))
        return (queue, connection.consume(queue: queue))
    }

    @Test("publish with confirm, then consume: body and every property arrive intact")
    func publishConsumeRoundTrip() async throws {
        try await withAMQPConnection { connection in
            let queue = TestEnvironment.uniqueName("test.roundtrip")
            try await self.declareQueue(connection, queue)
            let properties = AMQPProperties(
                contentType: "application/json", messageID: "m-1", correlationID: "c-1", replyTo: "somewhere",
                type: "test.thing.v1", timestamp: 1_795_000_000,
                headers: ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "attempt": 3, "flag": true])
            let body = Data(#"{"hello":"wörld"}"#.utf8) + Data([0, 255])
            try await connection.publish(
                AMQPMessage(exchange: Self.exchange, routingKey: queue, body: body, properties: properties))

            let consumer = connection.consume(queue: queue, prefetch: 10)
            let delivery = try await withTimeout(.seconds(10)) {
                var iterator = consumer.makeAsyncIterator()
                return try #require(await iterator.next())
            }
            #expect(delivery.body == body)
            #expect(delivery.properties == properties)
            #expect(delivery.routingKey == queue)
            #expect(delivery.redelivered == false)
            delivery.ack()
            consumer.cancel()
        }
    }

    @Test("two thousand publishes in flight at once are all confirmed and all consumed")
    func manyInFlight() async throws {
        try await withAMQPConnection { connection in
            let queue = TestEnvironment.uniqueName("test.window")
            try await self.declareQueue(connection, queue)
            let count = 2000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    group.addTask {
                        try await connection.publish(
                            AMQPMessage(
                                exchange: Self.exchange, routingKey: queue, body: Data("\(index)".utf8),
                                properties: AMQPProperties(messageID: "\(index)")))
                    }
                }
                try await group.waitForAll()
            }
            let consumer = connection.consume(queue: queue, prefetch: 500)
            let seen = try await withTimeout(.seconds(30)) {
                var seen = Set<String>()
                for await delivery in consumer {
                    seen.insert(delivery.properties.messageID ?? "")
                    delivery.ack()
                    if seen.count == count { break }
                }
                return seen
            }
            consumer.cancel()
            #expect(seen.count == count)
        }
    }

    @Test("a rejected message goes to the dead-letter exchange with its x-death record")
    func rejectDeadLetters() async throws {
        try await withAMQPConnection { connection in
            let queue = TestEnvironment.uniqueName("test.work")
            let deadLetters = TestEnvironment.uniqueName("test.dead")
            let dlx = "test.dlx"
            try await connection.declare(
                AMQPTopology(
                    exchanges: [.init(dlx, kind: .fanout)],
                    queues: [.init(deadLetters, arguments: testQueueArguments)],
                    bindings: [.init(queue: deadLetters, exchange: dlx, routingKey: "")]))
            try await self.declareQueue(connection, queue, arguments: ["x-dead-letter-exchange": .string(dlx)])
            try await connection.publish(
                AMQPMessage(
                    exchange: Self.exchange, routingKey: queue, body: Data("poison".utf8),
                    properties: AMQPProperties(messageID: "p-1")))

            let work = connection.consume(queue: queue)
            try await withTimeout(.seconds(10)) {
                for await delivery in work {
                    delivery.reject(requeue: false)
                    break
                }
            }
            let dead = connection.consume(queue: deadLetters)
            let deadLetter = try await withTimeout(.seconds(10)) {
                var iterator = dead.makeAsyncIterator()
                return try #require(await iterator.next())
            }
            deadLetter.ack()
            #expect(deadLetter.properties.messageID == "p-1")
            guard case .array(let deaths) = deadLetter.properties.headers["x-death"], case .table(let death) = deaths.first else {
                Issue.record("no x-death header: \(deadLetter.properties.headers)")
                return
            }
            #expect(death["queue"] == .string(queue))
            #expect(death["reason"] == .string("rejected"))
            work.cancel()
            dead.cancel()
        }
    }

    @Test("a mandatory message that matches no queue fails as unroutable")
    func unroutable() async throws {
        try await withAMQPConnection { connection in
            try await connection.declare(AMQPTopology(exchanges: [.init(Self.exchange, kind: .direct)]))
            await #expect(throws: AMQPError(.unroutable, "no queue is bound for \(Self.exchange)/nobody-listens")) {
                try await connection.publish(
                    AMQPMessage(
                        exchange: Self.exchange, routingKey: "nobody-listens", body: Data(),
                        properties: AMQPProperties(messageID: "u-1"),
                        mandatory: true))
            }
        }
    }

    @Test("a refused declaration fails its caller, and the connection recovers by itself")
    func refusedDeclarationRecovers() async throws {
        try await withAMQPConnection { connection in
            let queue = TestEnvironment.uniqueName("test.conflict")
            try await self.declareQueue(connection, queue)
            await #expect {
                try await connection.declare(AMQPTopology(queues: [.init(queue, arguments: ["x-message-ttl": 5])]))
            } throws: { error in
                (error as? AMQPError)?.code == .protocolError
            }
            // The broker closed the channel; the client reconnects, redeclares the good topology,
            // and keeps working.
            try await withTimeout(.seconds(15)) {
                try await connection.publish(AMQPMessage(exchange: Self.exchange, routingKey: queue, body: Data("after".utf8)))
            }
            let consumer = connection.consume(queue: queue)
            let delivery = try await withTimeout(.seconds(10)) {
                var iterator = consumer.makeAsyncIterator()
                return try #require(await iterator.next())
            }
            #expect(delivery.body == Data("after".utf8))
            delivery.ack()
            consumer.cancel()
        }
    }

    /// ``AMQPDelivery/canBeSettled``: delivery's event consumer drops the copies it holds from a
    /// connection since lost, and takes them again, in their place, from the broker.
    @Test("a delivery held across a lost connection cannot be settled any more, and comes again redelivered")
    func deliveryOfALostConnection() async throws {
        try await withAMQPConnection { connection in
            let (queue, consumer) = try await self.queueWithOneMessage(connection, "test.lost", body: "held")
            let received = Mutex<[AMQPDelivery]>([])
            let reading = Task { for await delivery in consumer { received.withLock { $0.append(delivery) } } }
            #expect(await TestHelpers.eventually(timeout: .seconds(10)) { received.withLock { $0.count } == 1 })
            let held = try #require(received.withLock { $0.first })
            #expect(held.canBeSettled)
            // A refused declaration: the broker closes the channel, and the consuming connection
            // starts over.
            await #expect(throws: AMQPError.self) {
                try await connection.declare(AMQPTopology(queues: [.init(queue, arguments: ["x-message-ttl": 5])]))
            }
            #expect(await TestHelpers.eventually(timeout: .seconds(10)) { !held.canBeSettled })
            #expect(await TestHelpers.eventually(timeout: .seconds(15)) { received.withLock { $0.count } == 2 })
            let again = try #require(received.withLock { $0.last })
            #expect(again.body == Data("held".utf8) && again.redelivered && again.canBeSettled)
            again.ack()
            consumer.cancel()
            await reading.value
        }
    }

    @Test("a message nacked with requeue comes back redelivered")
    func nackRequeue() async throws {
        try await withAMQPConnection { connection in
            let (_, consumer) = try await self.queueWithOneMessage(connection, "test.requeue", body: "again")
            let redelivered = try await withTimeout(.seconds(10)) {
                var iterator = consumer.makeAsyncIterator()
                let first = try #require(await iterator.next())
                first.nack(requeue: true)
                first.ack()  // ignored: a delivery is settled once
                let second = try #require(await iterator.next())
                second.ack()
                return second.redelivered
            }
            #expect(redelivered)
            consumer.cancel()
        }
    }

    @Test("a consumer whose queue is deleted is told: the client declares the queue again and consumes on")
    func deletedQueueConsumerRecovers() async throws {
        try await withAMQPConnection { connection in
            let queue = TestEnvironment.uniqueName("test.deleted")
            try await self.declareQueue(connection, queue)
            // Auto-ack: no settlement is left to send for a queue that is about to go.
            let consumer = connection.consume(queue: queue, prefetch: 10, autoAck: true)
            let bodies = try await withTimeout(.seconds(60)) {
                var iterator = consumer.makeAsyncIterator()
                try await connection.publish(AMQPMessage(exchange: Self.exchange, routingKey: queue, body: Data("before".utf8)))
                let before = try #require(await iterator.next())
                try BrokerAdmin.deleteQueue(queue)
                // RabbitMQ cancels the consumer and says so (basic.cancel, which the client asks
                // for at login); the client reconnects, declares its topology again and restarts
                // its consumers. Until then the queue is missing and a mandatory publish comes
                // back. Without the notification the queue never came back and this never ended.
                while true {
                    do {
                        try await connection.publish(
                            AMQPMessage(
                                exchange: Self.exchange, routingKey: queue, body: Data("after".utf8), mandatory: true))
                        break
                    } catch let error as AMQPError where error.code == .unroutable {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                }
                let after = try #require(await iterator.next())
                return [before.body, after.body]
            }
            #expect(bodies == [Data("before".utf8), Data("after".utf8)])
            consumer.cancel()
        }
    }
}
