import BenchSupport
import Foundation
import Histogram
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import PostgresNIO
import ServiceLifecycle

/// Measures the messaging service alone: `create_message` RPCs in (closed loop, many threads),
/// each committed with its outbox row, and the outbox relayed to the broker, in messages per
/// second and latency percentiles; beside it, the same run's ceiling: raw PostgreSQL
/// single-row insert-commits (a prepared insert, 8 connections). Needs `make up` (servers and
/// services) and runs with `make bench-messaging`.
@main
struct MessagingBench {
    static let users = 16
    static let threads = 32
    static let lanes = Int(ProcessInfo.processInfo.environment["BENCH_LANES"] ?? "") ?? 128
    static let messages = Int(ProcessInfo.processInfo.environment["BENCH_MESSAGES"] ?? "") ?? 20_000

    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        var logger = Logger(label: "messaging-bench")
        logger.logLevel = .warning
        let databaseURL = environment["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5433/messenger"
        var amqpConfiguration = try AMQPConfiguration(uri: environment["RABBITMQ_URI"] ?? "amqp://guest:guest@127.0.0.1:5673/%2f")
        // As the services read it: `off` for an A/B run without batches.
        amqpConfiguration.sendsBatches = environment["RABBITMQ_BATCHES"] != "off"
        say("messaging-bench: \(messages) create_message RPCs over \(threads) threads, \(lanes) concurrent callers")

        var database = try DatabaseConfiguration(url: databaseURL, schema: "messaging")
        database.maximumConnections = 8
        let postgres = database.makeClient(logger: logger)
        let amqp = AMQPConnection(configuration: amqpConfiguration, logger: logger)
        let rpc = RPCClient(connection: amqp, instanceName: "messaging-bench", timeout: .seconds(30), logger: logger)
        let group = ServiceGroup(services: [postgres, amqp, rpc], logger: logger)

        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }

            let ceiling = try await Ceilings.postgresInsertCommit(postgres, logger: logger)
            say(String(format: "  ceiling: raw insert-commit, 8 connections   %8.0f rows/s", ceiling))

            let setup = try await self.setUp(rpc)
            let result = try await self.run(rpc, postgres: postgres, setup: setup, logger: logger)
            say(String(format: "  create_message acked                        %8.0f msg/s", result.ackedRate))
            say(String(format: "  create_message acked and relayed            %8.0f msg/s", result.relayedRate))
            say(
                String(
                    format: "  ack latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f", result.p50, result.p90,
                    result.p99, result.p999, result.max))
            say(String(format: "  ratio to the ceiling                        %8.1f %%", 100 * result.relayedRate / ceiling))
            if result.errors > 0 { say("  errors: \(result.errors)") }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    struct Setup {
        var senders: [(user: UUID, thread: EntityID)]
    }

    /// Registers users through auth and creates DMs between them, as the users.
    static func setUp(_ rpc: RPCClient) async throws -> Setup {
        let tag = UUID().uuidString.prefix(6).lowercased()
        let ids = try await withThrowingTaskGroup(of: UUID.self) { group in
            for index in 0..<self.users {
                group.addTask {
                    let request = RegisterRequest(
                        username: "mbench_\(tag)_\(index)", email: "mbench_\(tag)_\(index)@bench.example",
                        password: "bench password", displayName: nil)
                    return try await rpc.call(AuthMessage.register, to: .auth, payload: request, replyAs: UserEnvelope.self).user
                        .id.uuid
                }
            }
            var ids: [UUID] = []
            for try await id in group { ids.append(id) }
            return ids
        }
        var senders: [(UUID, EntityID)] = []
        for index in 0..<self.threads {
            let a = ids[index % ids.count]
            let b = ids[(index / ids.count + index + 1) % ids.count]
            let request = CreateConversationRequest(type: .group, memberIds: [EntityID(b)], title: "bench \(index)")
            let thread = try await rpc.call(
                MessagingMessage.createConversation, to: .messaging, payload: request, replyAs: ThreadEnvelope.self, actor: a)
            senders.append((a, thread.thread.id))
        }
        return Setup(senders: senders)
    }

    struct Result {
        var ackedRate: Double
        var relayedRate: Double
        var p50, p90, p99, p999, max: Double
        var errors: Int
    }

    static let okReply = Data(#"{"ok":true"#.utf8)

    static func run(_ rpc: RPCClient, postgres: PostgresClient, setup: Setup, logger: Logger) async throws -> Result {
        let started = ContinuousClock.now
        let (histogram, errors) = await withTaskGroup(of: (Histogram<UInt64>, Int).self) { group in
            for lane in 0..<self.lanes {
                group.addTask {
                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                    var errors = 0
                    let (user, thread) = setup.senders[lane % setup.senders.count]
                    var index = lane
                    while index < self.messages {
                        // As the gateway does: the client's payload goes on as JSON text, and the
                        // reply comes back as JSON that is only checked, not decoded.
                        let payload = #"{"threadId":"\#(thread)","clientMessageId":"m\#(index)","body":"message \#(index)"}"#
                        let sent = ContinuousClock.now
                        do {
                            let reply = try await rpc.forward(
                                MessagingMessage.createMessage, to: .messaging, payloadJSON: payload, actor: user)
                            guard reply.starts(with: Self.okReply) else { throw ServiceError.internal() }
                            let elapsed = ContinuousClock.now - sent
                            histogram.record(
                                UInt64(
                                    elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
                        } catch {
                            errors += 1
                        }
                        index += self.lanes
                    }
                    return (histogram, errors)
                }
            }
            var total = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            var errors = 0
            for await (histogram, laneErrors) in group {
                total.add(histogram)
                errors += laneErrors
            }
            return (total, errors)
        }
        let acked = ContinuousClock.now - started
        while try await self.unpublished(postgres, logger: logger) > 0 { try await Task.sleep(for: .milliseconds(5)) }
        let relayed = ContinuousClock.now - started
        func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        return Result(
            ackedRate: Double(self.messages) / acked.seconds, relayedRate: Double(self.messages) / relayed.seconds, p50: ms(50),
            p90: ms(90), p99: ms(99), p999: ms(99.9), max: Double(histogram.max) / 1000, errors: errors)
    }

    static func unpublished(_ postgres: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await postgres.query("SELECT count(*) FROM outbox", logger: logger)
        for try await count in rows.decode(Int.self) { return count }
        return 0
    }
}
