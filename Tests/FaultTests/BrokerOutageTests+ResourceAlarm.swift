import Foundation
import MessengerAMQP
import Synchronization
import TestSupport
import Testing

extension BrokerOutageTests {
    /// Messages a consumer took, and whether it may acknowledge them yet.
    final class HeldDeliveries: Sendable {
        private let state = Mutex((taken: 0, held: [AMQPDelivery](), released: false))

        var taken: Int { self.state.withLock { $0.taken } }

        /// Counts `delivery`, and acknowledges it unless the consumer is still held.
        func take(_ delivery: AMQPDelivery) {
            let ackNow = self.state.withLock { state in
                state.taken += 1
                if !state.released { state.held.append(delivery) }
                return state.released
            }
            if ackNow { delivery.ack() }
        }

        /// Acknowledges what was held, and everything after it at once.
        func release() {
            let held = self.state.withLock { state in
                state.released = true
                defer { state.held = [] }
                return state.held
            }
            for delivery in held { delivery.ack() }
        }
    }

    /// Under a memory or disk alarm RabbitMQ stops reading from every connection that publishes.
    /// A service whose acks shared that connection could not drain its queues until the alarm
    /// cleared, which for a memory alarm caused by those queues is never.
    @Test("under a resource alarm, a connection whose publishes are blocked still consumes and acknowledges")
    func consumingGoesOnUnderAResourceAlarm() async throws {
        try await withAMQPConnection(name: "alarm") { connection in
            let (exchange, queue) = try await declareTestQueue(connection, "test.alarm")
            let count = 50
            for id in 0..<count {
                try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("\(id)".utf8)))
            }
            let deliveries = HeldDeliveries()
            let consumer = connection.consume(queue: queue, prefetch: 10)
            let consuming = Task {
                for await delivery in consumer { deliveries.take(delivery) }
            }
            #expect(await TestHelpers.eventually(timeout: .seconds(10)) { deliveries.taken == 10 })

            try TestHelpers.infra("rabbitmq-memory-alarm", "on")
            do {
                // A publish now blocks the connection that carries it until the alarm clears.
                let blockedPublish = Task {
                    try await connection.publish(
                        AMQPMessage(exchange: exchange, routingKey: queue, body: Data("during the alarm".utf8)))
                }
                try await Task.sleep(for: .seconds(1))
                deliveries.release()
                #expect(
                    await TestHelpers.eventually(timeout: .seconds(15)) { deliveries.taken == count },
                    "consumed \(deliveries.taken) of \(count) during the alarm")

                try TestHelpers.infra("rabbitmq-memory-alarm", "off")
                try await withTimeout(.seconds(15)) { try await blockedPublish.value }
                #expect(await TestHelpers.eventually(timeout: .seconds(10)) { deliveries.taken == count + 1 })
            } catch {
                try? TestHelpers.infra("rabbitmq-memory-alarm", "off")
                throw error
            }
            consumer.cancel()
            await consuming.value
        }
    }

    /// librabbitmq-c 0.11 sends a publish with no time limit, and under an alarm the broker does
    /// not read: a publish larger than the socket buffers blocks the publishing thread for good.
    /// Until the fortieth session a connection closed then never finished closing (a service
    /// told to stop during an alarm never exited); now its socket is shut down under the thread
    /// past the confirms' grace and a margin.
    @Test("a connection closes when a publish the broker does not read blocks its thread")
    func closesWhileAPublishIsBlocked() async throws {
        let connection = AMQPConnection(
            configuration: try TestEnvironment.amqpConfiguration(name: "alarm-close"), logger: TestEnvironment.logger)
        let (exchange, queue) = try await declareTestQueue(connection, "test.alarm.close")
        try TestHelpers.infra("rabbitmq-memory-alarm", "on")
        do {
            let publish = Task {
                try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data(count: 32 << 20)))
            }
            try await Task.sleep(for: .seconds(2))  // the thread is in the library, blocked
            let started = ContinuousClock.now
            try await withTimeout(.seconds(60)) { await connection.close() }
            let took = ContinuousClock.now - started
            #expect(took >= .seconds(5), "closed before the confirms' grace: \(took)")
            await #expect(throws: AMQPError.self) { try await publish.value }
        } catch {
            try? TestHelpers.infra("rabbitmq-memory-alarm", "off")
            await connection.close()
            throw error
        }
        try TestHelpers.infra("rabbitmq-memory-alarm", "off")
    }
}
