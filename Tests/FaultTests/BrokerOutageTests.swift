import Foundation
import MessengerAMQP
import MessengerRedis
import Synchronization
import TestSupport
import Testing

/// Stops and starts the real servers: these run alone, after every other test
/// (`scripts/test.sh` runs `swift test --filter FaultTests` last).
@Suite("Server outages", .serialized, .timeLimit(.minutes(3)))
struct BrokerOutageTests {
    /// What a publisher saw confirmed and what a consumer received.
    final class Ledger: Sendable {
        private let state = Mutex((confirmed: Set<Int>(), consumed: Set<Int>(), failures: [String]()))
        private let stopped = Atomic(false)
        var isStopped: Bool { self.stopped.load(ordering: .relaxed) }
        func stop() { self.stopped.store(true, ordering: .relaxed) }
        func confirmed(_ id: Int) { self.state.withLock { _ = $0.confirmed.insert(id) } }
        func consumed(_ id: Int) { self.state.withLock { _ = $0.consumed.insert(id) } }
        func publishFailed(_ error: any Error) { self.state.withLock { $0.failures.append("\(error)") } }
        var confirmedCount: Int { self.state.withLock { $0.confirmed.count } }
        var missing: Set<Int> { self.state.withLock { $0.confirmed.subtracting($0.consumed) } }
        var publishFailures: [String] { self.state.withLock { $0.failures } }
    }

    @Test("RabbitMQ stops and starts under a running publisher and consumer: both recover, nothing confirmed is lost")
    func rabbitMQRestart() async throws {
        let queue = TestEnvironment.uniqueName("test.outage")
        let exchange = "test.direct"
        let ledger = Ledger()
        let publisher = AMQPConnection(
            configuration: try TestEnvironment.amqpConfiguration(name: "publisher"), logger: TestEnvironment.logger)
        let consumerConnection = AMQPConnection(
            configuration: try TestEnvironment.amqpConfiguration(name: "consumer"), logger: TestEnvironment.logger)
        let topology = AMQPTopology(
            exchanges: [.init(exchange, kind: .direct)],
            queues: [.init(queue, arguments: ["x-expires": .int(600_000)])],
            bindings: [.init(queue: queue, exchange: exchange, routingKey: queue)])
        try await publisher.declare(topology)
        try await consumerConnection.declare(topology)
        let consumer = consumerConnection.consume(queue: queue, prefetch: 100)

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await delivery in consumer {
                    if let id = delivery.properties.messageID.flatMap(Int.init) { ledger.consumed(id) }
                    delivery.ack()
                }
            }
            group.addTask {
                // Ten publishers at a time, each waiting for its confirm.
                try await withThrowingTaskGroup(of: Void.self) { publishers in
                    for lane in 0..<10 {
                        publishers.addTask {
                            var id = lane
                            while !ledger.isStopped {
                                let message = AMQPMessage(
                                    exchange: exchange, routingKey: queue, body: Data("\(id)".utf8),
                                    properties: AMQPProperties(messageID: "\(id)"))
                                do {
                                    try await publisher.publish(message)
                                    ledger.confirmed(id)
                                } catch is CancellationError where ledger.isStopped {
                                    return  // the test is over; this publish was never confirmed
                                } catch {
                                    ledger.publishFailed(error)
                                }
                                id += 10
                                try await Task.sleep(for: .milliseconds(2))
                            }
                        }
                    }
                    try await publishers.waitForAll()
                }
            }

            #expect(await TestHelpers.eventually(timeout: .seconds(20)) { ledger.confirmedCount >= 300 })
            try TestHelpers.infra("rabbitmq-stop-app")
            try await Task.sleep(for: .seconds(2))
            #expect(!publisher.isConnected)
            try TestHelpers.infra("rabbitmq-start-app")
            let beforeRestart = ledger.confirmedCount
            #expect(
                await TestHelpers.eventually(timeout: .seconds(60)) { publisher.isConnected && consumerConnection.isConnected })
            #expect(await TestHelpers.eventually(timeout: .seconds(30)) { ledger.confirmedCount >= beforeRestart + 300 })
            ledger.stop()
            #expect(
                await TestHelpers.eventually(timeout: .seconds(30)) { ledger.missing.isEmpty },
                "lost: \(ledger.missing.sorted().prefix(20))")
            consumer.cancel()
            group.cancelAll()
        }
        #expect(ledger.publishFailures.isEmpty, "\(ledger.publishFailures)")
        await publisher.close()
        await consumerConnection.close()
    }

    @Test("after the broker comes back, every running service answers its ping again")
    func servicesRecoverAfterBrokerRestart() async throws {
        try TestHelpers.infra("rabbitmq-stop-app")
        try await Task.sleep(for: .seconds(1))
        try TestHelpers.infra("rabbitmq-start-app")
        let recovered = await TestHelpers.eventually(timeout: .seconds(60), every: .milliseconds(500)) {
            try await TestHelpers.get("\(TestEnvironment.gatewayAdminURL)/ping", timeout: 5).status == 200
        }
        #expect(recovered)
    }

    @Test("Redis restarts: the subscriber reconnects and subscribes again, commands work again")
    func redisRestart() async throws {
        let subscriber = RedisSubscriber(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let client = RedisClient(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let channel = TestEnvironment.uniqueName("test#restart")
        try await subscriber.subscribe(channels: [channel])
        #expect(await TestHelpers.eventually(timeout: .seconds(5)) { client.isConnected })

        try TestHelpers.infra("redis-restart")

        // Pub/sub keeps nothing for absent subscribers: publish until the resubscribed
        // connection hears one.
        let heard = try await withTimeout(.seconds(30)) {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    for await message in subscriber.messages where message.channel == channel { return true }
                    return false
                }
                group.addTask {
                    while !Task.isCancelled {
                        _ = try? await client.publish(channel: channel, message: Array("ping".utf8))
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    return false
                }
                defer { group.cancelAll() }
                return try await group.next() ?? false
            }
        }
        #expect(heard)
        #expect(subscriber.isConnected)
        #expect(try await client.command("PING").text == "PONG")
        await subscriber.close()
        await client.close()
    }
}
