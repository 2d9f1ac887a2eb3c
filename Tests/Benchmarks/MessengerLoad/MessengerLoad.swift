import BenchSupport
import Foundation
import Logging
import MessengerAMQP
import MessengerPostgres
import MessengerRedis
import NIOCore
import NIOPosix

/// The end-to-end load tool (`make bench`): fresh users, each with a Socket.IO WebSocket client
/// of its own (written on SwiftNIO here, so the load costs little CPU), DMs and groups of 10,
/// and the scenarios of docs/performance.md run one after the other against the running
/// services:
///
/// 1. `floor`: the latency floor, 1:1 DMs at one modest rate;
/// 2. `dm`, `group`: rate steps up to the highest rate with p99 <= 100 ms, nothing lost and no
///    errors, for DMs and for groups of 10;
/// 3. `idle`: idle sockets, the gateway's memory per connection;
/// 4. `storm`: every socket of many users drops at once and reconnects with `lastSeq` while
///    messages keep flowing.
///
/// Beside them, in the same run, the machine's ceilings: raw librabbitmq publish-with-confirm,
/// raw PostgreSQL insert-commit (prepared, 8 connections), Redis PUBLISH, and how long a thread
/// takes to wake another and be woken back after 1 ms of idleness; and for every step
/// each process's CPU seconds per 1,000 messages, from /proc. Writes `result.json` under
/// `results/<stamp>/` (`scripts/bench-report.py` turns it into a Markdown report with plots).
@main
struct MessengerLoad {
    static func main() async {
        do {
            try await self.run()
        } catch {
            // One line that says what failed, not a crash report of the top-level error.
            FileHandle.standardError.write(Data("messenger-load: failed: \(error)\n".utf8))
            exit(1)
        }
    }

    static func run() async throws {
        // The tool's tasks (the senders, the scenarios) run on NIO's event loops, where the sockets
        // are, as the services' do (ServiceMain): no hand-off to a thread of Swift concurrency's
        // own pool, so the load costs less of the CPU it shares with the system under test.
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        guard let options = LoadOptions(arguments: CommandLine.arguments) else { exit(2) }
        let environment = ProcessInfo.processInfo.environment
        let logger: Logger = {
            var logger = Logger(label: "messenger-load")
            logger.logLevel = .critical
            return logger
        }()
        if let gateway = options.idleWorker {
            try await IdleSockets.work(url: gateway, count: options.idle)
        }
        let processes = RunProcesses(selfName: "messenger-load")
        var result = LoadResult(
            startedAt: ISO8601DateFormatter().string(from: Date()), gitRevision: options.gitRevision,
            machine: .current)
        say(
            "messenger-load against \(options.base): scenarios \(options.scenarios.sorted().joined(separator: ",")); \(result.machine.cores) cores"
        )

        result.databaseAtStart = await DatabaseState.measure(environment: environment, logger: logger)
        if let state = result.databaseAtStart { say("  database at start: \(state.summary)") }
        if options.ceilings {
            result.ceilings = try await Self.ceilings(environment: environment, logger: logger, groupSize: options.groupSize)
        }

        // The user pool and its sockets (one each), DMs between pairs, groups of 10.
        say("  registering \(options.users) users")
        let accounts = try await Account.register(count: options.users, base: options.base, label: "u")
        let recorder = Recorder()
        let clients = accounts.enumerated().map {
            LoadClient(account: $0.element, slot: $0.offset, recorder: recorder, ackInterval: options.ackInterval)
        }
        let url = options.base.replacingOccurrences(of: "http", with: "ws") + "/socket.io/?EIO=4&transport=websocket"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients {
                group.addTask { try await client.run(url: url, logger: logger) }
            }
            for client in clients { try await client.connected() }
            var dms: [LoadConversation] = []
            for pair in stride(from: 0, to: clients.count - 1, by: 2) {
                let thread = try await clients[pair].createConversation(type: "DM", with: [clients[pair + 1].account.id])
                dms.append(LoadConversation(sender: clients[pair], thread: thread, recipients: [pair + 1]))
                dms.append(LoadConversation(sender: clients[pair + 1], thread: thread, recipients: [pair]))
            }
            var groups: [LoadConversation] = []
            for first in stride(from: 0, through: clients.count - options.groupSize, by: options.groupSize) {
                let members = Array(clients[first..<(first + options.groupSize)])
                let thread = try await members[0].createConversation(
                    type: "GROUP", with: members.dropFirst().map(\.account.id), title: "load group \(first / options.groupSize)")
                let slots = Set(members.map(\.slot))
                groups += members.map {
                    LoadConversation(sender: $0, thread: thread, recipients: slots.subtracting([$0.slot]))
                }
            }
            try await Task.sleep(for: .seconds(1))
            say(
                "  \(clients.count) sockets, \(dms.count / 2) DMs, \(groups.count / max(options.groupSize, 1)) groups of \(options.groupSize)"
            )
            let steps = RateSteps(
                recorder: recorder, processes: processes, diskProbe: options.diskProbe.flatMap { DiskSyncProbe(path: $0) })

            if options.scenarios.contains("floor") {
                result.scenarios.append(
                    try await Self.floor(
                        steps, dms, options: options, cores: result.machine.cores,
                        wakeUpP50Us: result.ceilings.threadWakeUpRoundTripP50Us))
            }
            if options.scenarios.contains("dm") {
                result.scenarios.append(
                    try await Self.throughput(
                        steps, dms, name: "throughput-dm", title: "Sustained throughput: 1:1 DMs", rates: options.rates,
                        options: options, sumOfParts: result.ceilings.sumOfPartsMessagesPerSecond,
                        cores: result.machine.cores))
            }
            if options.scenarios.contains("group") {
                var scenario = try await Self.throughput(
                    steps, groups, name: "throughput-group",
                    title: "Sustained throughput: groups of \(options.groupSize)", rates: options.groupRates, options: options,
                    sumOfParts: result.ceilings.groupSumOfPartsMessagesPerSecond, cores: result.machine.cores)
                scenario.groupSize = options.groupSize
                result.scenarios.append(scenario)
            }
            if options.scenarios.contains("idle") {
                result.scenarios.append(try await Self.idle(options: options))
            }
            if options.scenarios.contains("storm") {
                result.scenarios.append(try await Self.storm(url: url, options: options, logger: logger))
            }
            for client in clients { client.close() }
            group.cancelAll()
        }
        if options.ceilings {
            // A failure here must not cost the run its results: they are written without it.
            do {
                result.ceilingsAtEnd = try await Self.ceilings(
                    environment: environment, logger: logger, groupSize: options.groupSize, atEnd: true)
            } catch {
                say("  ceilings at the end: not measured (\(error))")
            }
        }
        result.databaseAtEnd = await DatabaseState.measure(environment: environment, logger: logger)

        let folder = "\(options.output)/\(result.startedAt.replacingOccurrences(of: ":", with: "-"))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try JSONEncoder.report.encode(result).write(to: URL(fileURLWithPath: "\(folder)/result.json"))
        say("\n  target                                         met   verdict")
        for scenario in result.scenarios {
            say(
                "  \(scenario.title.padding(toLength: 46, withPad: " ", startingAt: 0)) \(scenario.met ? "yes" : "no ")   \(scenario.verdict)"
            )
        }
        say("\nwrote \(folder)/result.json")
        try Data(folder.utf8).write(to: URL(fileURLWithPath: "\(options.output)/latest"))
    }

    /// The machine's ceilings, measured while the services are idle; `atEnd` for the second
    /// measurement, after the scenarios.
    static func ceilings(
        environment: [String: String], logger: Logger, groupSize: Int, atEnd: Bool = false
    ) async throws -> LoadResult.CeilingFigures {
        let name = atEnd ? "ceilings at the end" : "ceilings"
        say(atEnd ? "\n  \(name): ..." : "  ceilings (same run): ...")
        let amqp = try AMQPConfiguration(uri: environment["RABBITMQ_URI"] ?? "amqp://guest:guest@127.0.0.1:5673/%2f")
        let rabbit = try await Ceilings.rabbitMQPublishConfirm(amqp, logger: logger)
        var database = try DatabaseConfiguration(
            url: environment["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5433/messenger", schema: "public")
        database.maximumConnections = 8
        let postgres = database.makeClient(logger: logger)
        let running = Task { await postgres.run() }
        let insert = try await Ceilings.postgresInsertCommit(postgres, logger: logger)
        running.cancel()
        let redis = try await Ceilings.redisPublish(
            RedisConfiguration(
                host: environment["REDIS_HOST"] ?? "127.0.0.1", port: Int(environment["REDIS_PORT"] ?? "") ?? 6380),
            logger: logger)
        let sum = SumOfParts(members: 2).messagesPerSecond(rabbitmq: rabbit, postgres: insert, redis: redis)
        let groupSum = SumOfParts(members: groupSize).messagesPerSecond(rabbitmq: rabbit, postgres: insert, redis: redis)
        let wakeUp = try await Ceilings.threadWakeUpRoundTrip()
        say(
            "  \(name): "
                + String(
                    format:
                        "RabbitMQ publish+confirm %.0f msg/s, PostgreSQL insert-commit %.0f rows/s, Redis PUBLISH %.0f msg/s; sum of parts for a DM %.0f msg/s, for a group of %d %.0f msg/s; thread wake-up round trip after 1 ms idle p50 %.0f us, p99 %.0f us",
                    rabbit, insert, redis, sum, groupSize, groupSum, wakeUp.p50, wakeUp.p99))
        return .init(
            rabbitmqPublishConfirmPerSecond: rabbit, postgresInsertCommitPerSecond: insert, redisPublishPerSecond: redis,
            sumOfPartsMessagesPerSecond: sum, groupSumOfPartsMessagesPerSecond: groupSum,
            sumOfPartsNote: SumOfParts.note(groupSize: groupSize),
            threadWakeUpRoundTripP50Us: wakeUp.p50, threadWakeUpRoundTripP99Us: wakeUp.p99
        )
    }

    /// Scenario 1: the latency floor.
    static func floor(
        _ steps: RateSteps, _ dms: [LoadConversation], options: LoadOptions, cores: Int, wakeUpP50Us: Double?
    ) async throws -> Scenario {
        var scenario = Scenario(
            name: "latency-floor", title: "Latency floor: 1:1 DMs at \(options.floorRate) msg/s", kind: "rate-steps",
            target: Targets.floorText)
        say("\n  \(scenario.title), \(options.floorSeconds) s")
        say(RateSteps.header)
        if options.warmUpSeconds > 0 {
            // The first seconds of load on services just started pay one-time costs (statements
            // prepared on each pool connection, threads not yet known to messaging, first rows
            // of each user): reported apart, not mixed into the floor.
            let warmUp = try await steps.run(dms, rate: options.floorRate, seconds: options.warmUpSeconds, label: "warm-up")
            say(RateSteps.line(warmUp) + "  (warm-up, \(options.warmUpSeconds) s)")
            scenario.warmUp = warmUp
        }
        if options.unloadedSeconds > 0 {
            // The same DMs at a tenth of the rate: nothing waits for a core, so this is what the
            // path costs without contention. Not a lower bound here: threads that sleep between
            // messages take longer to wake, and 20 msg/s can be slower than 200.
            let rate = max(1, options.floorRate / 10)
            let unloaded = try await steps.run(dms, rate: rate, seconds: options.unloadedSeconds, label: "unloaded")
            say(RateSteps.line(unloaded) + "  (unloaded, \(options.unloadedSeconds) s)")
            scenario.unloaded = unloaded
        }
        let step = try await steps.run(dms, rate: options.floorRate, seconds: options.floorSeconds, label: "floor")
        say(RateSteps.line(step))
        for line in RateSteps.tailLines(step) { say(line) }
        scenario.judgeFloor(step)
        if !scenario.met {
            scenario.bound = Bounds.floor(step: step, unloaded: scenario.unloaded, cores: cores, wakeUpP50Us: wakeUpP50Us)
            say("    bound: \(scenario.bound ?? "")")
        }
        return scenario
    }

    /// Scenario 2: rate steps up to the highest rate within p99 <= 100 ms, nothing lost, no
    /// errors; stops after two steps in a row miss it.
    static func throughput(
        _ steps: RateSteps, _ conversations: [LoadConversation], name: String, title: String, rates: [Int],
        options: LoadOptions, sumOfParts: Double?, cores: Int
    ) async throws -> Scenario {
        var scenario = Scenario(
            name: name, title: title, kind: "rate-steps",
            target: Targets.throughputText)
        say("\n  \(title), \(options.stepSeconds) s per step")
        say(RateSteps.header)
        var results: [RateStep] = []
        var misses = 0
        for rate in rates {
            let step = try await steps.run(conversations, rate: rate, seconds: options.stepSeconds, label: name)
            say(RateSteps.line(step))
            if let disk = RateSteps.tailLines(step).first { say(disk) }
            results.append(step)
            if step.withinTarget {
                misses = 0
            } else {
                misses += 1
                if misses == 2 { break }
            }
            // Let retries and backlogs settle between steps.
            try await Task.sleep(for: .seconds(2))
        }
        scenario.judgeThroughput(results, sumOfParts: sumOfParts)
        if !scenario.met {
            scenario.bound = Bounds.throughput(
                steps: results, best: scenario.bestRate, target: Targets.throughput, cores: cores,
                sumOfParts: sumOfParts)
            if let bound = scenario.bound { say("    bound: \(bound)") }
        }
        return scenario
    }

    /// Scenario 3: idle sockets, on gateway processes started for this scenario alone (so that
    /// what they hold is what the sockets cost), as many as the open-file limit requires.
    static func idle(options: LoadOptions) async throws -> Scenario {
        let gatewayCount = (options.idle + options.socketsPerProcess - 1) / options.socketsPerProcess
        var scenario = Scenario(
            name: "idle-sockets",
            title: "Idle sockets: \(options.idle) connections over \(gatewayCount) gateway\(gatewayCount == 1 ? "" : "s")",
            kind: "idle", target: Targets.idleText)
        say("\n  \(scenario.title)")
        let account = try await Account.register(base: options.base, name: "idle")
        let adminPort = Int(ProcessInfo.processInfo.environment["GATEWAY_ADMIN_PORT"] ?? "") ?? 9100
        let replicas = try await GatewayReplicas.start(count: gatewayCount, base: options.base, adminPort: adminPort)
        let outcomes: [IdleSockets.GatewayOutcome]
        do {
            let shares = replicas.replicas.enumerated().map { index, replica in
                IdleSockets.Share(
                    base: replica.base, pid: replica.pid,
                    count: options.idle / gatewayCount + (index < options.idle % gatewayCount ? 1 : 0))
            }
            outcomes = try await IdleSockets.run(shares: shares, token: account.token)
            await replicas.stop()
        } catch {
            await replicas.stop()
            throw error
        }
        scenario.judgeIdle(outcomes, requested: options.idle)
        if gatewayCount > 1 {
            scenario.note =
                "one process may open \(options.socketsPerProcess + 1_000) files here (hard limit, cannot be raised in this container), so the sockets are spread over \(gatewayCount) gateway processes started for this scenario, each with a load process of its own that connects from a loopback address of its own; the figure is the gateways' RSS growth together over the connections together"
        }
        say("    \(scenario.verdict)")
        for (index, gateway) in (scenario.gateways ?? []).enumerated() {
            say(
                String(
                    format: "      gateway %d: %d connections, %.1f KiB each, RSS %d -> %d MiB", index + 1, gateway.connected,
                    gateway.bytesPerConnection / 1024, gateway.rssBeforeBytes >> 20, gateway.rssAfterBytes >> 20))
        }
        return scenario
    }

    /// Scenario 4: the reconnect storm.
    static func storm(url: String, options: LoadOptions, logger: Logger) async throws -> Scenario {
        let clients = options.stormUsers * options.stormSockets
        var scenario = Scenario(
            name: "reconnect-storm",
            title:
                "Reconnect storm: \(clients) sockets (\(options.stormUsers) users x \(options.stormSockets)), \(options.stormSenders) sending socket\(options.stormSenders == 1 ? "" : "s")",
            kind: "storm", target: Targets.stormText)
        say("\n  \(scenario.title)")
        let accounts = try await Account.register(count: options.stormUsers + 1, base: options.base, label: "storm")
        let senders = (0..<options.stormSenders).map {
            LoadClient(account: accounts[0], slot: (1 << 19) + $0, recorder: Recorder())
        }
        let outcome = try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in senders {
                group.addTask { try await sender.run(url: url, logger: logger) }
                try await sender.connected()
            }
            let outcome = try await ReconnectStorm.run(
                url: url, senders: senders, receivers: Array(accounts.dropFirst()), socketsPerUser: options.stormSockets,
                rate: options.stormRate, seconds: options.stormSeconds,
                dropAfter: ReconnectStorm.dropAfter(seconds: options.stormSeconds),
                logger: logger)
            for sender in senders { sender.close() }
            group.cancelAll()
            return outcome
        }
        scenario.judgeStorm(outcome)
        say("    \(scenario.verdict)")
        return scenario
    }
}

extension LoadResult.Machine {
    /// This machine, from /proc and uname.
    static var current: Self {
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return .init(
            cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30), kernel: release)
    }
}
