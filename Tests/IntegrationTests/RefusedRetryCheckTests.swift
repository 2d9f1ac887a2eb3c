import Foundation
import MessengerAMQP
import MessengerContracts
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@testable import DeliveryService

/// A first retry check the broker refuses gives its domain events back to their queue, and the
/// next check waits a second. Until the fifty-fifth session the events came back at once, and
/// each time the event log pushed them again: about ten push storms a second for as long as the
/// broker refused.
@Suite("A refused first retry check", .timeLimit(.minutes(1)))
struct RefusedRetryCheckTests {
    @Test("gives its domain events back, and the next check waits a second")
    func pausesAfterRefusal() async throws {
        try await withAMQPConnection(name: "test-refused-check") { connection in
            // The check's delay queue, full from the start: the broker nacks every publish to it
            // (`reject-publish`), as it does for a queue at its length limit.
            let delay = Duration.milliseconds(Int64.random(in: 600_000..<700_000))
            try await connection.declare(
                AMQPTopology(queues: [
                    .init(
                        DeliveryTopology.delayQueue(delay),
                        arguments: testQueueArguments.merging(["x-max-length": .int(0), "x-overflow": .string("reject-publish")])
                        {
                            $1
                        })
                ]))
            let (exchange, queue) = try await declareTestQueue(connection, "test.refused-check")
            try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("event".utf8)))

            let checks = FirstRetryChecks(
                publisher: PushPublisher(amqp: connection, delays: [delay]), window: .milliseconds(20), limit: 100,
                logger: TestEnvironment.logger)
            let group = ServiceGroup(services: [checks], logger: TestEnvironment.logger)
            let running = Task { try await group.run() }
            defer { running.cancel() }

            // The domain event comes, goes to the checks, is given back, comes again: the time
            // between its first and third coming holds two refusals and their pauses.
            let consumer = connection.consume(queue: queue, prefetch: 10)
            let arrivals = Mutex<[ContinuousClock.Instant]>([])
            let consuming = Task {
                for await delivery in consumer {
                    let count = arrivals.withLock {
                        $0.append(.now)
                        return $0.count
                    }
                    if count < 3 {
                        await checks.add(events: [EntityID(.v7())], acking: [delivery])
                    } else {
                        delivery.ack()
                    }
                }
            }
            #expect(await TestHelpers.eventually(timeout: .seconds(20)) { arrivals.withLock { $0.count } >= 3 })
            let times = arrivals.withLock { $0 }
            consumer.cancel()
            await consuming.value
            await group.triggerGracefulShutdown()
            try await withTimeout(.seconds(10)) { try await running.value }
            try #require(times.count >= 3)
            // Given back at once each time, the three would come within a few tens of
            // milliseconds (the window, the publish and its nack).
            #expect(times[2] - times[0] >= .milliseconds(900), "the checks did not pause after a refusal")
        }
    }
}
