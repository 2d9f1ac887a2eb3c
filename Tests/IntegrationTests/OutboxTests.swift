import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@Suite("Transactional outbox", .timeLimit(.minutes(2)))
struct OutboxTests {
    struct Numbered: Codable, Sendable {
        var number: Int
    }

    /// A fresh schema with the inbox and outbox migrations, dropped afterwards.
    func withSchema(_ body: (Database, String) async throws -> Void) async throws {
        try await withFreshSchema(
            "test_outbox", migrations: [.inbox, .outbox(version: 2), .outboxDeletesPublished(version: 3)], body)
    }

    /// A topic exchange and a queue bound to every key, named for this test.
    func declareEventQueue(on amqp: AMQPConnection) async throws -> (exchange: String, queue: String) {
        let exchange = TestEnvironment.uniqueName("test.events")
        let queue = TestEnvironment.uniqueName("test.outbox")
        try await amqp.declare(
            AMQPTopology(
                exchanges: [.init(exchange, kind: .topic, durable: false)],
                queues: [.init(queue, arguments: testQueueArguments)],
                bindings: [.init(queue: queue, exchange: exchange, routingKey: "#")]))
        return (exchange, queue)
    }

    /// How many messages still arrive on `queue` within half a second (each one acked).
    func leftInQueue(_ queue: String, on amqp: AMQPConnection) async throws -> Int {
        let extra = amqp.consume(queue: queue, prefetch: 10)
        let count = Mutex(0)
        let draining = Task {
            for await delivery in extra {
                delivery.ack()
                count.withLock { $0 += 1 }
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        extra.cancel()
        await draining.value
        return count.withLock { $0 }
    }

    /// Commits an outbox row carrying `number`.
    func write(_ number: Int, on client: Database) async throws {
        try await client.withTransaction(logger: TestEnvironment.logger) { connection in
            try await Outbox.append(
                Envelope(type: "test.numbered.v1", data: Numbered(number: number)), on: connection,
                logger: TestEnvironment.logger)
        }
    }

    /// The numbers that arrive on a queue, in arrival order (-1 for a message that is not one),
    /// each acknowledged as it comes.
    final class Arrivals: Sendable {
        let numbers = Mutex<[Int]>([])
        private let consumer: AMQPConsumer
        private let consuming = Mutex<Task<Void, Never>?>(nil)

        init(from queue: String, on amqp: AMQPConnection) {
            self.consumer = amqp.consume(queue: queue, prefetch: 100)
            let task = Task {
                for await delivery in self.consumer {
                    let number = try? MessengerJSON.decode(Envelope<Numbered>.self, from: delivery.body).data.number
                    self.numbers.withLock { $0.append(number ?? -1) }
                    delivery.ack()
                }
            }
            self.consuming.withLock { $0 = task }
        }

        func contains(_ number: Int) -> Bool { self.numbers.withLock { $0.contains(number) } }

        func stop() async {
            self.consumer.cancel()
            await self.consuming.withLock { $0 }?.value
        }
    }

    @Test("two relays publish every committed event exactly once, in commit order; rolled-back events never")
    func relaysPublishOnceInOrder() async throws {
        try await self.withSchema { client, schema in
            let logger = TestEnvironment.logger
            try await withAMQPConnection(name: "outbox-test") { amqp in
                let (exchange, queue) = try await self.declareEventQueue(on: amqp)
                // Two replicas: the writers wake the first; the second only polls.
                let signal = OutboxSignal()
                let relays = [signal, OutboxSignal()].map { signal in
                    OutboxRelay(
                        client: client, amqp: amqp, exchange: exchange, signal: signal, schema: schema, batchSize: 50,
                        pollInterval: .milliseconds(50), vacuumEvery: 60, logger: logger)
                }
                let group = ServiceGroup(services: relays, logger: logger)
                try await withThrowingTaskGroup(of: Void.self) { running in
                    running.addTask { try await group.run() }
                    // 300 events from 6 concurrent writers; every fifth transaction rolls back.
                    try await withThrowingTaskGroup(of: Void.self) { writers in
                        for writer in 0..<6 {
                            writers.addTask {
                                for index in 0..<50 {
                                    let number = writer * 1000 + index
                                    _ = try? await client.transaction(logger: logger) { connection in
                                        try await Outbox.append(
                                            Envelope(type: "test.numbered.v1", data: Numbered(number: number)), on: connection,
                                            logger: logger)
                                        if index % 5 == 4 { throw TestFailure("rolled back") }
                                    }
                                    signal.wake()
                                }
                            }
                        }
                        try await writers.waitForAll()
                    }
                    var received: [Int] = []
                    var ids = Set<String>()
                    let consumer = amqp.consume(queue: queue, prefetch: 500)
                    for await delivery in consumer {
                        let envelope = try MessengerJSON.decode(Envelope<Numbered>.self, from: delivery.body)
                        #expect(delivery.properties.messageID == EntityID(envelope.id).description)
                        ids.insert(delivery.properties.messageID ?? "")
                        received.append(envelope.data.number)
                        delivery.ack()
                        if received.count == 240 { break }
                    }
                    consumer.cancel()
                    #expect(ids.count == 240)
                    #expect(received.allSatisfy { $0 % 1000 % 5 != 4 })
                    // Each writer's events arrive in the order it committed them.
                    for writer in 0..<6 {
                        let mine = received.filter { $0 / 1000 == writer }
                        #expect(mine == mine.sorted())
                        #expect(mine.count == 40)
                    }
                    // The relay deletes a batch once its confirms are in, a moment after the broker
                    // delivered it (and vacuums the table every 60 rows on the way).
                    var left = -1
                    for _ in 0..<100 {
                        let rows = try await client.query("SELECT count(*) FROM outbox", logger: logger)
                        for try await count in rows.decode(Int.self) { left = count }
                        if left == 0 { break }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    #expect(left == 0)
                    // Nothing more arrives: no event was published twice.
                    #expect(try await self.leftInQueue(queue, on: amqp) == 0)
                    await group.triggerGracefulShutdown()
                    try await running.waitForAll()
                }
            }
        }
    }

    @Test("the relay holding the turn publishes what another replica commits, and hands the turn over when it stops")
    func turnIsHandedOver() async throws {
        try await self.withSchema { client, schema in
            let logger = TestEnvironment.logger
            try await withAMQPConnection(name: "outbox-handover-test") { amqp in
                let (exchange, queue) = try await self.declareEventQueue(on: amqp)
                // No polls within the test's time: a relay wakes only on its signal or a NOTIFY.
                let (first, second) = (OutboxSignal(), OutboxSignal())
                func relay(_ signal: OutboxSignal) -> ServiceGroup {
                    ServiceGroup(
                        services: [
                            OutboxRelay(
                                client: client, amqp: amqp, exchange: exchange, signal: signal, schema: schema,
                                pollInterval: .seconds(600), logger: logger)
                        ], logger: logger)
                }
                func write(_ numbers: Range<Int>, waking signal: OutboxSignal) async throws {
                    for number in numbers {
                        try await client.withTransaction(logger: logger) { connection in
                            try await Outbox.append(
                                Envelope(type: "test.numbered.v1", data: Numbered(number: number)), on: connection,
                                logger: logger)
                        }
                        signal.wake()
                    }
                }
                func receive(_ count: Int) async throws -> [Int] {
                    var numbers: [Int] = []
                    let consumer = amqp.consume(queue: queue, prefetch: 100)
                    for await delivery in consumer {
                        numbers.append(try MessengerJSON.decode(Envelope<Numbered>.self, from: delivery.body).data.number)
                        delivery.ack()
                        if numbers.count == count { break }
                    }
                    consumer.cancel()
                    return numbers
                }
                let (holder, other) = (relay(first), relay(second))
                try await withThrowingTaskGroup(of: Void.self) { running in
                    let holding = Task { try await holder.run() }
                    // The first relay takes the turn at its first wake and publishes.
                    try await write(0..<1, waking: first)
                    #expect(try await receive(1) == [0])
                    running.addTask { try await other.run() }
                    // The second cannot take the turn: it wakes the holder, which publishes.
                    try await write(1..<21, waking: second)
                    #expect(try await receive(20) == Array(1..<21))
                    // The holder stops and hands the turn back; the second takes it at its next wake.
                    // Its wakes come once the holder has stopped: one that came before the hand-back
                    // found the turn taken, and with no poll in the test's time, the second waited
                    // for good (a clean-clone run met the time limit so).
                    await holder.triggerGracefulShutdown()
                    try await holding.value
                    try await write(21..<41, waking: second)
                    #expect(try await receive(20) == Array(21..<41))
                    await other.triggerGracefulShutdown()
                    try await running.waitForAll()
                }
                // Both handed their last batch's rows back deleted: nothing is published twice.
                let rows = try await client.query("SELECT count(*) FROM outbox", logger: logger)
                for try await count in rows.decode(Int.self) { #expect(count == 0) }
                #expect(try await self.leftInQueue(queue, on: amqp) == 0)
            }
        }
    }

    /// How the holder loses the broker in ``holderCutOffFromTheBroker(_:)``.
    enum BrokerCut: String, CustomTestStringConvertible {
        /// The connection that carries the second row is cut once the row went through.
        case whilePublishing
        /// Every connection is cut while the relay is idle, before the second row is written.
        case whileIdle

        var testDescription: String { self.rawValue }
    }

    /// The holder's broker connection goes through a proxy, which stops taking connections and
    /// then cuts the holder's connection, while it publishes the second row or before, while it
    /// is idle: the holder is cut off from the broker alone. Until the fiftieth session it held
    /// the turn for as long, and the other replica's rows waited with its own.
    @Test(
        "a holder cut off from the broker gives the turn back, and a replica that reaches it publishes",
        arguments: [BrokerCut.whilePublishing, .whileIdle])
    func holderCutOffFromTheBroker(_ cut: BrokerCut) async throws {
        try await self.withSchema { client, schema in
            let logger = TestEnvironment.logger
            try await withAMQPConnection(name: "outbox-reaches") { amqp in
                let (exchange, queue) = try await self.declareEventQueue(on: amqp)
                var configuration = try TestEnvironment.amqpConfiguration(name: "outbox-cut-off")
                let proxy = try await CuttingProxy(to: configuration.host, port: configuration.port)
                configuration.port = proxy.port
                let cutOff = AMQPConnection(configuration: configuration, logger: logger)
                let (holderSignal, otherSignal) = (OutboxSignal(), OutboxSignal())
                func relay(_ amqp: AMQPConnection, _ signal: OutboxSignal) -> ServiceGroup {
                    ServiceGroup(
                        services: [
                            OutboxRelay(
                                client: client, amqp: amqp, exchange: exchange, signal: signal, schema: schema,
                                pollInterval: .seconds(600), brokerAwayLimit: .seconds(1), logger: logger)
                        ], logger: logger)
                }
                let arrivals = Arrivals(from: queue, on: amqp)
                let (holder, other) = (relay(cutOff, holderSignal), relay(amqp, otherSignal))
                let holding = Task { try await holder.run() }
                let running = Task { try await other.run() }
                // The holder takes the turn once its broker connection is up, and publishes 1.
                try await self.write(1, on: client)
                #expect(
                    await TestHelpers.eventually(timeout: .seconds(15)) {
                        holderSignal.wake()
                        return arrivals.contains(1)
                    })
                // Cut off: no new connection, and the holder's is closed.
                try await proxy.close()
                switch cut {
                case .whilePublishing:
                    proxy.cutAfterRequest(containing: "\"number\":2")
                case .whileIdle:
                    proxy.cutEveryConnection()
                    try await Task.sleep(for: .milliseconds(500))
                }
                try await self.write(2, on: client)
                holderSignal.wake()
                try await self.write(3, on: client)
                #expect(
                    await TestHelpers.eventually(timeout: .seconds(20)) {
                        otherSignal.wake()
                        return arrivals.contains(3)
                    }, "the other replica never published")
                var firstSeen: [Int] = []
                for number in arrivals.numbers.withLock({ $0 }) where !firstSeen.contains(number) { firstSeen.append(number) }
                #expect(firstSeen == [1, 2, 3])
                await holder.triggerGracefulShutdown()
                await other.triggerGracefulShutdown()
                try await holding.value
                try await running.value
                await arrivals.stop()
                await cutOff.close()
            }
        }
    }

    /// The holder's database connection goes through a proxy that stops passing the server's
    /// answers and keeps the connection open, as for a holder whose process froze or whose
    /// network drops its packets: its session ends once idle for the turn's limit, and the other
    /// replica takes the turn and publishes. Until the sixtieth session the frozen holder kept
    /// the turn, and every replica's events, for as long as its session lived (a review).
    @Test("a holder that stops answering loses the turn once its session has been idle for the limit")
    func frozenHolderLosesTheTurn() async throws {
        try await self.withSchema { client, schema in
            let logger = TestEnvironment.logger
            var url = try #require(URLComponents(string: TestEnvironment.databaseURL))
            let proxy = try await CuttingProxy(to: url.host ?? "127.0.0.1", port: url.port ?? 5432)
            url.port = proxy.port
            let proxied = try DatabaseConfiguration(url: try #require(url.string), schema: schema).makeDatabase(logger: logger)
            try await whileRunning(proxied) {
                try await withAMQPConnection(name: "outbox-frozen-holder") { amqp in
                    let (exchange, queue) = try await self.declareEventQueue(on: amqp)
                    func relay(_ database: Database) -> ServiceGroup {
                        ServiceGroup(
                            services: [
                                OutboxRelay(
                                    client: database, amqp: amqp, exchange: exchange, signal: OutboxSignal(), schema: schema,
                                    pollInterval: .milliseconds(200), turnIdleLimit: .seconds(2), logger: logger)
                            ], logger: logger)
                    }
                    let arrivals = Arrivals(from: queue, on: amqp)
                    let (holder, other) = (relay(proxied), relay(client))
                    let holding = Task { try await holder.run() }
                    // The holder, alone, takes the turn at a poll and publishes 1.
                    try await self.write(1, on: client)
                    #expect(await TestHelpers.eventually(timeout: .seconds(15)) { arrivals.contains(1) })
                    let running = Task { try await other.run() }
                    proxy.freezeAnswers()
                    try await self.write(2, on: client)
                    #expect(
                        await TestHelpers.eventually(timeout: .seconds(30)) { arrivals.contains(2) },
                        "the other replica never took the turn from the frozen holder")
                    // The holder's statement under way was never answered: its connection is cut, so
                    // that it stops (it waits for good otherwise, as it did without the limit).
                    proxy.thawAnswers()
                    proxy.cutEveryConnection()
                    await holder.triggerGracefulShutdown()
                    await other.triggerGracefulShutdown()
                    try await holding.value
                    try await running.value
                    await arrivals.stop()
                }
            }
            try await proxy.close()
        }
    }

    /// Since the fiftieth session a relay whose broker is away does not take the turn at all: it
    /// stops at once, with its rows left for the next holder.
    @Test("a relay stops within its grace while the broker is away, and leaves its rows for the next holder")
    func shutdownDoesNotWaitForAnAbsentBroker() async throws {
        try await self.withSchema { client, schema in
            let logger = TestEnvironment.logger
            // Nothing listens on port 1: the connection keeps retrying, and a publish waits.
            let amqp = AMQPConnection(configuration: AMQPConfiguration(host: "127.0.0.1", port: 1), logger: logger)
            let signal = OutboxSignal()
            let relay = ServiceGroup(
                services: [
                    OutboxRelay(
                        client: client, amqp: amqp, exchange: "test.nowhere", signal: signal, schema: schema,
                        pollInterval: .seconds(600), shutdownGrace: .milliseconds(200), logger: logger)
                ], logger: logger)
            try await client.withTransaction(logger: logger) { connection in
                try await Outbox.append(
                    Envelope(type: "test.numbered.v1", data: Numbered(number: 1)), on: connection, logger: logger)
            }
            let running = Task { try await relay.run() }
            signal.wake()
            // The relay reads the row and waits for the broker; then shutdown comes.
            try await Task.sleep(for: .milliseconds(300))
            await relay.triggerGracefulShutdown()
            try await withTimeout(.seconds(20)) { try await running.value }
            await amqp.close()
            let rows = try await client.query("SELECT count(*) FROM outbox", logger: logger)
            for try await count in rows.decode(Int.self) { #expect(count == 1) }
        }
    }
}
