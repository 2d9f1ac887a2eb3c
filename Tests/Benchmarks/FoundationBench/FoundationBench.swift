import BenchSupport
import Foundation
import Histogram
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerRedis
import ServiceLifecycle

/// Measures the foundation layer against the machine's own ceilings, in one run:
/// raw librabbitmq-c publish-with-confirm (window 1000) beside the same through `AMQPConnection`,
/// consume-with-ack, RPC round trips, and Redis PUBLISH. Prints a table and writes JSON under
/// `results/`. Run with `make bench` (release build) on an otherwise idle machine.
@main
struct FoundationBench {
    struct Options {
        var messages = 100_000
        var window = 1000
        var rounds = 3
        var rpcCalls = 5000
        var redisMessages = 100_000
        var bodyBytes = 256

        init(arguments: [String]) {
            for argument in arguments.dropFirst() {
                let parts = argument.trimmingCharacters(in: CharacterSet(charactersIn: "-")).split(separator: "=")
                guard parts.count == 2, let value = Int(parts[1]) else { continue }
                switch parts[0] {
                case "messages": self.messages = value
                case "window": self.window = value
                case "rounds": self.rounds = value
                case "rpc-calls": self.rpcCalls = value
                case "redis-messages": self.redisMessages = value
                case "body-bytes": self.bodyBytes = value
                default: break
                }
            }
        }
    }

    static func main() async throws {
        let options = Options(arguments: CommandLine.arguments)
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        let environment = ProcessInfo.processInfo.environment
        var amqp = try AMQPConfiguration(uri: environment["RABBITMQ_URI"] ?? "amqp://guest:guest@127.0.0.1:5673/%2f")
        amqp.confirmWindow = options.window
        let redis = RedisConfiguration(
            host: environment["REDIS_HOST"] ?? "127.0.0.1", port: Int(environment["REDIS_PORT"] ?? "") ?? 6380)

        var report = BenchmarkReport(
            startedAt: Timestamp.format(Date()), host: ProcessInfo.processInfo.hostName,
            parameters: [
                "messages": "\(options.messages)", "window": "\(options.window)", "rounds": "\(options.rounds)",
                "bodyBytes": "\(options.bodyBytes)", "rpcCalls": "\(options.rpcCalls)",
                "redisMessages": "\(options.redisMessages)",
                "cores": "\(ProcessInfo.processInfo.activeProcessorCount)",
            ])
        say(
            "foundation-bench: \(options.messages) persistent \(options.bodyBytes)-byte messages per round, window \(options.window), \(options.rounds) rounds"
        )
        let body = [UInt8](repeating: 0x61, count: options.bodyBytes)

        // 1. Publish with confirms: raw C loop and our client, interleaved rounds, best of each.
        let connection = AMQPConnection(configuration: amqp, logger: logger)
        var rawRates: [Double] = []
        var swiftRates: [Double] = []
        var lastSwiftQueue = ""
        for round in 1...options.rounds {
            let rawQueue = "bench.raw.\(UUID().uuidString.prefix(8))"
            let swiftQueue = "bench.swift.\(UUID().uuidString.prefix(8))"
            try await connection.declare(
                AMQPTopology(queues: [rawQueue, swiftQueue].map { .init($0, arguments: ["x-expires": .int(120_000)]) }))
            let raw = try await RawRabbitMQPublisher(configuration: amqp).publishOnOwnThread(
                count: options.messages, body: body, queue: rawQueue, window: options.window)
            rawRates.append(Double(options.messages) / raw.seconds)
            let swift = try await Self.publishThroughClient(
                connection, count: options.messages, body: Data(body), queue: swiftQueue, window: options.window)
            swiftRates.append(Double(options.messages) / swift.seconds)
            lastSwiftQueue = swiftQueue
            say("  round \(round): raw C \(Int(rawRates.last!)) msg/s, AMQPConnection \(Int(swiftRates.last!)) msg/s")
        }
        let rawBest = rawRates.max()!
        let swiftBest = swiftRates.max()!
        say("")
        report.add("raw librabbitmq-c publish+confirm", rawBest, "msg/s", note: "best of \(rawRates.map { Int($0) })")
        report.add("AMQPConnection publish+confirm", swiftBest, "msg/s", note: "best of \(swiftRates.map { Int($0) })")
        report.add("AMQPConnection / raw C", swiftBest / rawBest * 100, "%", note: "target >= 80 %")

        // 2. Consume with manual acks what the last round published.
        let consumeTime = try await Self.consume(connection, queue: lastSwiftQueue, count: options.messages)
        report.add("AMQPConnection consume+ack (prefetch 1000)", Double(options.messages) / consumeTime.seconds, "msg/s")

        // 3. RPC round trips: server and client on connections of their own.
        let rpc = try await Self.measureRPC(amqp: amqp, calls: options.rpcCalls, logger: logger)
        report.add("RPC round trip p50", rpc.p50, "ms")
        report.add("RPC round trip p90", rpc.p90, "ms")
        report.add("RPC round trip p99", rpc.p99, "ms", note: "target <= 2 ms idle")
        report.add("RPC round trip max", rpc.max, "ms")
        report.add("RPC throughput (64 concurrent callers)", rpc.throughput, "calls/s")
        await connection.close()

        // 4. Redis PUBLISH through the pipelining client.
        let redisRate = try await Ceilings.redisPublish(
            redis, messages: options.redisMessages, bodyBytes: options.bodyBytes, logger: logger)
        report.add("Redis PUBLISH (256 concurrent callers)", redisRate, "msg/s")

        let path = try report.write(to: "results")
        say("\nwrote \(path)")
    }

    /// `window` tasks, each publishing its share one confirmed message at a time, so exactly
    /// `window` messages are in flight, as in the raw loop.
    static func publishThroughClient(_ connection: AMQPConnection, count: Int, body: Data, queue: String, window: Int)
        async throws
        -> Duration
    {
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<window {
                group.addTask {
                    var index = lane
                    while index < count {
                        try await connection.publish(AMQPMessage(exchange: "", routingKey: queue, body: body))
                        index += window
                    }
                }
            }
            try await group.waitForAll()
        }
        return ContinuousClock.now - started
    }

    static func consume(_ connection: AMQPConnection, queue: String, count: Int) async throws -> Duration {
        let consumer = connection.consume(queue: queue, prefetch: 1000)
        let started = ContinuousClock.now
        var received = 0
        for await delivery in consumer {
            delivery.ack()
            received += 1
            if received == count { break }
        }
        consumer.cancel()
        return ContinuousClock.now - started
    }

    struct RPCResult {
        var p50: Double
        var p90: Double
        var p99: Double
        var max: Double
        var throughput: Double
    }

    static func measureRPC(amqp: AMQPConfiguration, calls: Int, logger: Logger) async throws -> RPCResult {
        let serverConnection = AMQPConnection(configuration: amqp, logger: logger)
        let clientConnection = AMQPConnection(configuration: amqp, logger: logger)
        let service = ServiceName(rawValue: "bench-\(UUID().uuidString.prefix(8))")
        try await serverConnection.declare(RPCServer.topology(for: service, queueArguments: ["x-expires": .int(60_000)]))
        var router = RPCRouter()
        router.addBenchPing(service: service)
        let server = RPCServer(connection: serverConnection, service: service, prefetch: 256, router: router, logger: logger)
        let client = RPCClient(connection: clientConnection, instanceName: "bench", logger: logger)
        let group = ServiceGroup(services: [client, server], logger: logger)

        return try await withThrowingTaskGroup(of: RPCResult?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            let ping = PingCommand(nonce: "bench")
            for _ in 0..<500 {  // warm-up
                _ = try await client.call(.ping(service), to: service, payload: ping, replyAs: PingReply.self)
            }
            var histogram = Histogram<UInt64>(highestTrackableValue: 10_000_000, numberOfSignificantValueDigits: .three)
            for _ in 0..<calls {
                let started = ContinuousClock.now
                _ = try await client.call(.ping(service), to: service, payload: ping, replyAs: PingReply.self)
                let elapsed = ContinuousClock.now - started
                _ = histogram.record(
                    UInt64(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
            }
            let concurrentCalls = calls * 4
            let started = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { callers in
                for lane in 0..<64 {
                    callers.addTask {
                        var index = lane
                        while index < concurrentCalls {
                            _ = try await client.call(.ping(service), to: service, payload: ping, replyAs: PingReply.self)
                            index += 64
                        }
                    }
                }
                try await callers.waitForAll()
            }
            let throughput = Double(concurrentCalls) / (ContinuousClock.now - started).seconds
            await group.triggerGracefulShutdown()
            _ = try await tasks.next()
            await serverConnection.close()
            await clientConnection.close()
            func ms(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
            return RPCResult(p50: ms(50), p90: ms(90), p99: ms(99), max: Double(histogram.max) / 1000, throughput: throughput)
        }
    }
}

extension RPCRouter {
    /// The cheapest handler there is, so the numbers are the transport's.
    mutating func addBenchPing(service: ServiceName) {
        self.on(.ping(service), PingCommand.self) { command, _ in
            PingReply(nonce: command.nonce, service: service.rawValue, instance: "bench")
        }
    }
}
