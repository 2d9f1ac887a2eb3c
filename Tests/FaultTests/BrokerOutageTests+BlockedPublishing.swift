import Foundation
import MessengerAMQP
import MessengerContracts
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

extension BrokerOutageTests {
    struct Count: Codable, Sendable {}

    /// Under a resource alarm the broker stops reading a publishing connection and says so
    /// (`connection.blocked`). Requests written into it then waited in the socket and ran once
    /// the alarm cleared, long after their callers were answered `unavailable`. Until the
    /// forty-fourth session that was so; now nothing is written while the connection is
    /// blocked, and a request whose caller gave up is dropped where it waits.
    @Test("RPC requests made while the broker blocks publishing are not sent, and do not run after the alarm")
    func requestsWaitWhileBlocked() async throws {
        try await withAMQPConnection(name: "blocked") { connection in
            let service = ServiceName(rawValue: TestEnvironment.uniqueName("blocked"))
            try await connection.declare(RPCServer.topology(for: service, queueArguments: testQueueArguments))
            let ran = Atomic(0)
            var router = RPCRouter()
            router.on("test.count.v1", Count.self) { _, _ in
                ran.add(1, ordering: .relaxed)
                return Count()
            }
            let server = RPCServer(connection: connection, service: service, router: router, logger: TestEnvironment.logger)
            let client = RPCClient(
                connection: connection, instanceName: "test", timeout: .seconds(1), logger: TestEnvironment.logger)
            let group = ServiceGroup(services: [client, server], logger: TestEnvironment.logger)
            let running = Task { try await group.run() }
            _ = try await client.call("test.count.v1", to: service, payload: Count(), replyAs: Count.self, timeout: .seconds(5))
            try TestHelpers.infra("rabbitmq-memory-alarm", "on")
            var failed = 0
            do {
                // The first request written blocks the connection, and brings the notice.
                _ = try? await client.call("test.count.v1", to: service, payload: Count(), replyAs: Count.self)
                try await Task.sleep(for: .milliseconds(500))
                failed = await withTaskGroup(of: Bool.self) { calls in
                    for _ in 0..<10 {
                        calls.addTask { [client, service] in
                            (try? await client.call("test.count.v1", to: service, payload: Count(), replyAs: Count.self)) == nil
                        }
                    }
                    return await calls.reduce(0) { $0 + ($1 ? 1 : 0) }
                }
                try await Task.sleep(for: .seconds(1))
            } catch {
                try? TestHelpers.infra("rabbitmq-memory-alarm", "off")
                throw error
            }
            try TestHelpers.infra("rabbitmq-memory-alarm", "off")
            // What the broker read before the notice runs now; nothing after it.
            try await Task.sleep(for: .seconds(3))
            #expect(failed == 10)
            let afterTheFirst = ran.load(ordering: .relaxed) - 1
            #expect(afterTheFirst <= 1, "\(afterTheFirst) requests ran whose callers had been answered unavailable")
            await group.triggerGracefulShutdown()
            _ = await running.result
        }
    }
}
