import BenchSupport
import Foundation
import HummingbirdWSClient
import Logging
import MessengerAMQP
import MessengerContracts
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Opens N idle Socket.IO WebSocket clients against the running gateway and measures the
/// gateway's memory per connection, then broadcasts pushes to all of them (one user, N
/// sockets, through RabbitMQ and the gateway's fan-out) and measures deliveries per second and
/// per gateway CPU-second. Needs `make up`; run with `make bench-socket`.
@main
struct SocketLoad {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        let options = Dictionary(
            uniqueKeysWithValues: CommandLine.arguments.dropFirst().compactMap { argument -> (String, String)? in
                let parts = argument.trimmingCharacters(in: CharacterSet(charactersIn: "-")).split(separator: "=", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            })
        let clients = Int(options["clients"] ?? "") ?? 10_000
        let broadcasts = Int(options["broadcasts"] ?? "") ?? 100
        let base = environment["GATEWAY_URL"] ?? "http://127.0.0.1:5000"
        // `--server-url` and `--trigger-url`: another Socket.IO server (the python-socketio
        // reference) whose broadcast is started by a POST to the trigger URL.
        let serverURL = options["server-url"] ?? base
        let triggerURL = options["trigger-url"]
        let pidFile = options["server-pid-file"] ?? options["gateway-pid-file"] ?? ".run/pids/svc-socket-gateway.pid"
        guard let pidText = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let gatewayPID = Int32(pidText.trimmingCharacters(in: .whitespacesAndNewlines))
        else {
            say("socket-load: cannot read the gateway pid from \(pidFile) (make up first)")
            exit(2)
        }
        let logger: Logger = {
            var logger = Logger(label: "socket-load")
            logger.logLevel = .critical
            return logger
        }()

        let token = try await Account.register(base: base, name: "socket").token
        let url = serverURL.replacingOccurrences(of: "http", with: "ws") + "/socket.io/?EIO=4&transport=websocket"
        let counters = Counters()
        let before = ProcessStats.residentBytes(gatewayPID)
        say("socket-load: \(clients) WebSocket clients against \(serverURL); server RSS before \(before / 1024) KiB")

        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<clients {
                group.addTask {
                    do {
                        try await IdleSocketClient.run(
                            url: url, token: token, logger: logger, connected: { counters.connected() },
                            event: { counters.delivered() }, stop: { counters.isStopping })
                    } catch {
                        if counters.failed() <= 3, !counters.isStopping { say("  connection failed: \(error)") }
                    }
                }
                if index % 200 == 199 { try await Task.sleep(for: .milliseconds(20)) }
            }

            // 1. Idle connections.
            let connectDeadline = ContinuousClock.now + .seconds(120)
            while counters.connectedCount + counters.failedCount < clients, ContinuousClock.now < connectDeadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            try await Task.sleep(for: .seconds(3))
            let after = ProcessStats.residentBytes(gatewayPID)
            let connected = counters.connectedCount
            say("  connected \(connected), failed \(counters.failedCount)")
            say(
                "  server RSS after \(after / 1024) KiB: \(String(format: "%.2f", Double(after - before) / 1024 / Double(max(connected, 1)))) KiB per connection (target <= 10)"
            )

            // 2. Broadcast: each push reaches every connected socket.
            let amqp = AMQPConnection(
                configuration: try AMQPConfiguration(uri: environment["RABBITMQ_URI"] ?? "amqp://guest:guest@127.0.0.1:5673/%2f"),
                logger: logger)
            let userID = try Self.subject(of: token)
            let cpuBefore = ProcessStats.cpuSeconds(gatewayPID)
            let started = ContinuousClock.now
            if let triggerURL {
                var request = URLRequest(url: URL(string: "\(triggerURL)?n=\(broadcasts)")!)
                request.httpMethod = "POST"
                request.timeoutInterval = 300
                _ = try await URLSession.shared.data(for: request)
            } else {
                for index in 0..<broadcasts {
                    let body = #"{"rooms":["user:\#(userID)"],"event":"bench","args":[{"n":\#(index)}]}"#
                    try await amqp.publish(
                        AMQPMessage(exchange: GatewayPushes.exchange, routingKey: GatewayPushes.routingKey, body: Data(body.utf8))
                    )
                }
            }
            let expected = broadcasts * connected
            let deadline = ContinuousClock.now + .seconds(300)
            while counters.deliveredCount < expected, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let elapsed = ContinuousClock.now - started
            let seconds = elapsed.seconds
            let cpu = ProcessStats.cpuSeconds(gatewayPID) - cpuBefore
            let delivered = counters.deliveredCount
            say(
                "  broadcast: \(broadcasts) pushes x \(connected) sockets = \(delivered)/\(expected) deliveries in \(String(format: "%.2f", seconds)) s"
            )
            say(
                "  \(Int(Double(delivered) / seconds)) deliveries/s; \(Int(Double(delivered) / max(cpu, 0.001))) deliveries per server CPU-second (\(String(format: "%.2f", cpu)) CPU-s)"
            )
            await amqp.close()
            counters.stop()
            group.cancelAll()
        }
    }

    /// The `sub` claim of a JWT (read, not verified: the gateway verifies).
    static func subject(of token: String) throws -> String {
        let payload = token.split(separator: ".")[1]
        var base64 = payload.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        struct Claims: Decodable { var sub: String }
        return try JSONDecoder().decode(Claims.self, from: Data(base64Encoded: base64)!).sub
    }
}

/// What the clients saw, counted across tasks.
final class Counters: Sendable {
    private let connections = Atomic(0)
    private let failures = Atomic(0)
    private let deliveries = Atomic(0)
    private let stopping = Atomic(false)
    func connected() { self.connections.add(1, ordering: .relaxed) }
    /// Counts a failure; returns how many there have been.
    @discardableResult func failed() -> Int { self.failures.add(1, ordering: .relaxed).newValue }
    func delivered() { self.deliveries.add(1, ordering: .relaxed) }
    func stop() { self.stopping.store(true, ordering: .relaxed) }
    var connectedCount: Int { self.connections.load(ordering: .relaxed) }
    var failedCount: Int { self.failures.load(ordering: .relaxed) }
    var deliveredCount: Int { self.deliveries.load(ordering: .relaxed) }
    var isStopping: Bool { self.stopping.load(ordering: .relaxed) }
}
