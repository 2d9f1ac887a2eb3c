import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import DeliveryService

extension BrokerOutageTests {
    /// A retry check under way at graceful shutdown waits for its confirm
    /// (``retryCheckUnderWayAtShutdownAcks()``), and under a resource alarm that lasts, the confirm
    /// never comes: until the forty-fourth session the service waited until it was killed. Its
    /// parts run as `ServiceMain` runs them, with a 2 s `SHUTDOWN_TIMEOUT_SECONDS`.
    @Test("a graceful stop held up by a resource alarm ends after the shutdown timeout and gives back what it took")
    func stopEndsUnderALastingAlarm() async throws {
        let connection = AMQPConnection(
            configuration: try TestEnvironment.amqpConfiguration(name: "stop-alarm"), logger: TestEnvironment.logger)
        let (queue, received, consumer, consuming) = try await Self.threeDomainEvents(on: connection, "test.stop.alarm")

        let checks = FirstRetryChecks(
            publisher: PushPublisher(amqp: connection, delays: [.seconds(600)]), window: .milliseconds(50), limit: 100,
            logger: TestEnvironment.logger)
        let group = ServiceGroup(
            configuration: ServiceMain.groupConfiguration(
                services: [connection, checks], shutdownTimeout: .seconds(2), logger: TestEnvironment.logger))
        let stopped = Atomic(false)
        let running = Task {
            _ = try? await group.run()
            stopped.store(true, ordering: .relaxed)
        }
        let started: ContinuousClock.Instant
        try TestHelpers.infra("rabbitmq-memory-alarm", "on")
        do {
            await checks.add(events: [EntityID(.v7())], acking: received.all)
            // The timer's check now waits for its confirm, which the alarm holds for good.
            try await Task.sleep(for: .milliseconds(500))
            started = ContinuousClock.now
            await group.triggerGracefulShutdown()
        } catch {
            try? TestHelpers.infra("rabbitmq-memory-alarm", "off")
            throw error
        }
        let ended = await TestHelpers.eventually(timeout: .seconds(40)) { stopped.load(ordering: .relaxed) }
        let took = ContinuousClock.now - started
        // Lifting the alarm ends a stop that waited for it.
        try TestHelpers.infra("rabbitmq-memory-alarm", "off")
        await running.value
        consumer.cancel()
        await consuming.value
        #expect(ended, "the stop waited for the alarm to end")
        #expect(took >= .seconds(2), "the check under way got less than the shutdown timeout: \(took)")

        // Never acked, the three domain events are in the queue again for the next replica.
        try await withAMQPConnection(name: "stop-alarm-after") { after in
            let again = Mutex(0)
            let consumer = after.consume(queue: queue, prefetch: 10)
            let consuming = Task {
                for await delivery in consumer {
                    again.withLock { $0 += 1 }
                    delivery.ack()
                }
            }
            #expect(
                await TestHelpers.eventually(timeout: .seconds(10)) { again.withLock { $0 } == 3 },
                "\(again.withLock { $0 }) of the 3 came back")
            consumer.cancel()
            await consuming.value
        }
    }
}
