import Foundation
import MessengerAMQP
import TestSupport
import Testing

extension BrokerOutageTests {
    /// A broker whose process stops (SIGSTOP: a frozen VM, a stalled node) keeps its sockets
    /// open and reads nothing: a publisher that fills them blocks in librabbitmq's send, which
    /// has no time limit, and its heartbeats are never looked at. Until the forty-sixth session
    /// the publishing thread stayed there for as long as the broker did (for a dead link whose
    /// peer never resets, about 15 minutes of TCP retries); now its socket is shut down past
    /// ``AMQPConfiguration/stalledCallLimit`` and it reconnects, and once the broker runs again
    /// every publish is confirmed and consumed.
    @Test("a publisher blocked by a frozen broker reconnects past the stall limit; nothing confirmed is lost")
    func frozenBroker() async throws {
        let queue = TestEnvironment.uniqueName("test.frozen")
        let exchange = "test.direct"
        // The heartbeat (30 s) is far longer than the test: only the stall watch can notice.
        try await withAMQPConnection(
            name: "frozen",
            configuring: {
                $0.heartbeat = 30
                $0.stalledCallLimit = .seconds(3)
            }
        ) { connection in
            let topology = AMQPTopology(
                exchanges: [.init(exchange, kind: .direct)],
                queues: [.init(queue, arguments: ["x-expires": .int(600_000)])],
                bindings: [.init(queue: queue, exchange: exchange, routingKey: queue)])
            try await connection.declare(topology)
            try await connection.publish(AMQPMessage(exchange: exchange, routingKey: queue, body: Data("warm".utf8)))

            let body = Data(repeating: 0x61, count: 256 * 1024)
            let ledger = Ledger()
            try TestHelpers.infra("rabbitmq-freeze", "on")
            let publishes = Task {
                // 24 MB: more than the sockets between here and the broker hold.
                await withTaskGroup(of: Void.self) { group in
                    for n in 0..<96 {
                        group.addTask {
                            let message = AMQPMessage(
                                exchange: exchange, routingKey: queue, body: body, properties: AMQPProperties(messageID: "\(n)"))
                            if (try? await connection.publish(message)) != nil { ledger.confirmed(n) }
                        }
                    }
                }
            }
            let reconnected = await TestHelpers.eventually(timeout: .seconds(20)) { !connection.isPublishingConnected }
            try TestHelpers.infra("rabbitmq-freeze", "off")
            #expect(reconnected, "the publishing connection stayed blocked in the library while the broker was frozen")
            // The broker runs again: every publish is confirmed (published again after the reconnect).
            #expect(await TestHelpers.eventually(timeout: .seconds(60)) { ledger.confirmedCount == 96 })
            publishes.cancel()
            _ = await publishes.value

            let consumer = connection.consume(queue: queue, prefetch: 100)
            let seen = try await withTimeout(.seconds(30)) {
                var ids = Set<String>()
                for await delivery in consumer {
                    if let id = delivery.properties.messageID, Int(id) != nil { ids.insert(id) }
                    delivery.ack()
                    if ids.count == 96 { break }
                }
                return ids
            }
            #expect(seen.count == 96)
        }
    }
}
