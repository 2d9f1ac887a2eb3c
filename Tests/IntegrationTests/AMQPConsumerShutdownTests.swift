import Foundation
import MessengerAMQP
import ServiceLifecycleTestKit
import Synchronization
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

    /// ``AMQPBatches/AsyncIterator/arrived(maximum:)``: what delivery's event consumer takes,
    /// without waiting, behind messages it holds at the head of its queue.
    @Test("a batch consumer takes what arrived behind its last batch, in order, without waiting")
    func arrivedBehindTheLastBatch() async throws {
        try await withAMQPConnection(name: "test-arrived") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.arrived")
            let consumer = connection.consume(queue: queue, prefetch: 10)
            var batches = consumer.batches(maximum: 10).makeAsyncIterator()
            #expect(batches.arrived(maximum: 10).isEmpty)
            try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("0".utf8)))
            var taken = await batches.next() ?? []
            let messages = (1..<6).map { AMQPMessage(exchange: exchange, routingKey: queue, body: Data("\($0)".utf8)) }
            try await connection.publish(messages)
            let deadline = ContinuousClock.now + .seconds(10)
            while taken.count < 6, ContinuousClock.now < deadline {
                let arrived = batches.arrived(maximum: 2)
                #expect(arrived.count <= 2)
                taken += arrived
                if arrived.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(taken.map { String(decoding: $0.body, as: UTF8.self) } == ["0", "1", "2", "3", "4", "5"])
            #expect(batches.arrived(maximum: 10).isEmpty)
            for delivery in taken { delivery.ack() }
            consumer.cancel()
        }
    }

    /// ``AMQPConsumer/runInOrderUntilShutdown(_:)``: the active consumer of a single-active-
    /// consumer queue has 30 messages, has handled 10, and shuts down. The standby gets the
    /// other 50 in the queue's order. With a `basic.cancel` in place of the close, this test
    /// failed on the local RabbitMQ 3.10.8: the standby got nothing within 20 s, since that
    /// broker did not hand a classic queue over until the channel closed (a broker that hands
    /// over at the cancel would give it messages 30 to 59 while 10 to 29 were still held).
    @Test("an ordered consumer's shutdown gives back what it did not handle, in place, before the standby gets anything")
    func orderedHandover() async throws {
        try await withAMQPConnection(name: "test-handover-active") { first in
            try await withAMQPConnection(name: "test-handover-standby") { second in
                let exchange = "test.direct"
                let queue = TestEnvironment.uniqueName("test.handover")
                var arguments = testQueueArguments
                arguments["x-single-active-consumer"] = .bool(true)
                let topology = AMQPTopology(
                    exchanges: [.init(exchange, kind: .direct)], queues: [.init(queue, arguments: arguments)],
                    bindings: [.init(queue: queue, exchange: exchange, routingKey: queue)])
                try await first.declare(topology)
                try await second.declare(topology)
                for n in 0..<60 {
                    try await first.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("\(n)".utf8)))
                }
                // The first consumer registered is the active one.
                let active = first.consume(queue: queue, prefetch: 30)
                #expect(await TestHelpers.eventually(timeout: .seconds(10)) { (try? BrokerAdmin.consumerCount(queue)) == 1 })
                let standbyGot = Mutex<[String]>([])
                let standby = second.consume(queue: queue, prefetch: 100)
                #expect(await TestHelpers.eventually(timeout: .seconds(10)) { (try? BrokerAdmin.consumerCount(queue)) == 2 })
                try await testGracefulShutdown { shutdown in
                    try await active.runInOrderUntilShutdown { handover in
                        var received = 0
                        for await delivery in active {
                            received += 1
                            if received <= 10, handover.begin() {
                                delivery.ack()
                                _ = handover.end()
                            }
                            if received == 30 { shutdown.triggerGracefulShutdown() }
                        }
                    }
                }
                let taking = Task {
                    for await delivery in standby {
                        standbyGot.withLock { $0.append(String(decoding: delivery.body, as: UTF8.self)) }
                        delivery.ack()
                    }
                }
                #expect(await TestHelpers.eventually(timeout: .seconds(20)) { standbyGot.withLock { $0.count } >= 50 })
                standby.cancel()
                taking.cancel()
                #expect(standbyGot.withLock { $0 } == (10..<60).map { "\($0)" })
            }
        }
    }

    /// An ordered consumer idle at shutdown may still have acks to send: delivery acks a batch
    /// once its pushes are confirmed, after it has taken the next batch. Here a batch of three
    /// is acked a second after it was handled, shutdown begins in that second, and a fourth
    /// message arrives in it. Until the forty-second session the idle consumer's channel was
    /// closed at once: the three acks were dropped and the three came back.
    @Test("an ordered consumer idle at shutdown sends the acks still on their way before it closes")
    func idleOrderedShutdownKeepsLateAcks() async throws {
        try await withAMQPConnection(name: "test-idle-handover") { connection in
            let exchange = "test.direct"
            let queue = TestEnvironment.uniqueName("test.idle-handover")
            var arguments = testQueueArguments
            arguments["x-single-active-consumer"] = .bool(true)
            try await connection.declare(
                AMQPTopology(
                    exchanges: [.init(exchange, kind: .direct)], queues: [.init(queue, arguments: arguments)],
                    bindings: [.init(queue: queue, exchange: exchange, routingKey: queue)]))
            func publish(_ n: Int) async throws {
                try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("\(n)".utf8)))
            }
            for n in 0..<3 { try await publish(n) }
            let consumer = connection.consume(queue: queue, prefetch: 10)
            try await testGracefulShutdown { shutdown in
                try await consumer.runInOrderUntilShutdown { handover in
                    let (handled, settling) = AsyncStream.makeStream(of: [AMQPDelivery].self)
                    await withDiscardingTaskGroup { group in
                        group.addTask {
                            for await batch in handled {
                                shutdown.triggerGracefulShutdown()
                                try? await Task.sleep(for: .milliseconds(500))
                                try? await publish(3)
                                try? await Task.sleep(for: .milliseconds(500))
                                for delivery in batch { delivery.ack() }
                            }
                        }
                        var taken: [AMQPDelivery] = []
                        for await batch in consumer.batches(maximum: 10) {
                            guard handover.begin() else { break }
                            taken += batch
                            if taken.count == 3 { settling.yield(taken) }
                            guard handover.end() else { break }
                        }
                        settling.finish()
                    }
                }
            }
            let after = connection.consume(queue: queue)
            let got = Mutex<[String]>([])
            let taking = Task {
                for await delivery in after {
                    got.withLock { $0.append(String(decoding: delivery.body, as: UTF8.self)) }
                    delivery.ack()
                }
            }
            #expect(await TestHelpers.eventually(timeout: .seconds(10)) { !got.withLock { $0 }.isEmpty })
            try await Task.sleep(for: .seconds(1))
            after.cancel()
            await taking.value
            #expect(got.withLock { $0 } == ["3"])
        }
    }
}
