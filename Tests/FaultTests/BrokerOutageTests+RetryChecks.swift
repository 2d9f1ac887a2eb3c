import Foundation
import MessengerAMQP
import MessengerContracts
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import DeliveryService

extension BrokerOutageTests {
    /// Three messages on a new queue, received (not settled) by a consumer that keeps taking
    /// what comes: the domain events a retry check is to ack. Cancel the consumer and await its
    /// task at the end.
    static func threeDomainEvents(
        on connection: AMQPConnection, _ prefix: String
    ) async throws -> (queue: String, received: Received, consumer: AMQPConsumer, consuming: Task<Void, Never>) {
        let (exchange, queue) = try await declareTestQueue(connection, prefix)
        for id in 0..<3 {
            try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("\(id)".utf8)))
        }
        let received = Received()
        let consumer = connection.consume(queue: queue, prefetch: 10)
        let consuming = Task {
            for await delivery in consumer { received.list.withLock { $0.append(delivery) } }
        }
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { received.all.count == 3 })
        return (queue, received, consumer, consuming)
    }

    /// The deliveries a test consumer took.
    final class Received: Sendable {
        let list = Mutex<[AMQPDelivery]>([])
        var all: [AMQPDelivery] { self.list.withLock { $0 } }
    }

    /// Delivery acks a batch's domain events once their first retry check is confirmed
    /// (``FirstRetryChecks``). A check under way when graceful shutdown begins must still get its
    /// confirm and ack what it took: until the forty-first session the timer's loop was
    /// cancelled whole, the check's publish stopped waiting and nacked, and the next replica
    /// pushed those events once more. A resource alarm holds the check's publish while the
    /// shutdown begins.
    @Test("a retry check under way when graceful shutdown begins still acks what it took")
    func retryCheckUnderWayAtShutdownAcks() async throws {
        try await withAMQPConnection(name: "checks") { connection in
            let (_, received, consumer, consuming) = try await Self.threeDomainEvents(on: connection, "test.checks")

            let checks = FirstRetryChecks(
                publisher: PushPublisher(amqp: connection, delays: [.seconds(600)]), window: .milliseconds(50),
                limit: 100, logger: TestEnvironment.logger)
            let group = ServiceGroup(services: [checks], logger: TestEnvironment.logger)
            let running = Task { try await group.run() }
            try TestHelpers.infra("rabbitmq-memory-alarm", "on")
            do {
                await checks.add(events: [EntityID(.v7())], acking: received.all)
                // The timer's check is now waiting for its confirm, which the alarm holds.
                try await Task.sleep(for: .milliseconds(500))
                await group.triggerGracefulShutdown()
                try await Task.sleep(for: .milliseconds(500))
                try TestHelpers.infra("rabbitmq-memory-alarm", "off")
            } catch {
                try? TestHelpers.infra("rabbitmq-memory-alarm", "off")
                throw error
            }
            try await withTimeout(.seconds(20)) { try await running.value }
            // Nacked, the three would come back to the consumer at once.
            try await Task.sleep(for: .seconds(2))
            let redelivered = received.all.count - 3
            #expect(redelivered == 0, "the check's domain events were given back instead of acked")
            consumer.cancel()
            await consuming.value
        }
    }
}
