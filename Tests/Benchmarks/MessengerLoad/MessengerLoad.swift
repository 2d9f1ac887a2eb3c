import Foundation
import Histogram
import HummingbirdWSClient
import Logging
import SocketIOProtocol
import Synchronization

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// End to end through the whole system: `pairs` DMs between fresh users, each user one Socket.IO
/// WebSocket client; messages sent at a fixed arrival rate (open loop: each message is stamped
/// with its intended send time, so a slow system cannot slow the load down), and the latency
/// from that time to `message_created` at the recipient, plus the ack latency, errors and
/// loss. Every client acknowledges what it received (`ack_events`) every 250 ms, as a client would.
///
/// `messenger-load --pairs=10 --rates=200,500,1000 --duration=20` steps through the rates and
/// reports, for each, the percentiles and whether p99 stayed within 100 ms with nothing lost.
/// Needs `make up` (release services for meaningful figures); `make bench-e2e` runs it.
@main
struct MessengerLoad {
    static func main() async throws {
        let options = Dictionary(
            uniqueKeysWithValues: CommandLine.arguments.dropFirst().compactMap { argument -> (String, String)? in
                let parts = argument.trimmingCharacters(in: CharacterSet(charactersIn: "-")).split(separator: "=", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            })
        let base = ProcessInfo.processInfo.environment["GATEWAY_URL"] ?? "http://127.0.0.1:5000"
        let pairs = Int(options["pairs"] ?? "") ?? 10
        let rates = (options["rates"] ?? "200").split(separator: ",").compactMap { Int($0) }
        let duration = Int(options["duration"] ?? "") ?? 20
        let logger: Logger = {
            var logger = Logger(label: "messenger-load")
            logger.logLevel = .critical
            return logger
        }()

        say("messenger-load: \(pairs) DM pairs (\(pairs * 2) users, one socket each) against \(base)")
        let users = try await withThrowingTaskGroup(of: Account.self) { group in
            for index in 0..<(pairs * 2) {
                group.addTask { try await Account.register(base: base, index: index) }
            }
            var accounts: [Account] = []
            for try await account in group { accounts.append(account) }
            return accounts
        }
        let recorder = Recorder()
        let url = base.replacingOccurrences(of: "http", with: "ws") + "/socket.io/?EIO=4&transport=websocket"
        let clients = users.map { LoadClient(account: $0, recorder: recorder) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients {
                group.addTask { try await client.run(url: url, logger: logger) }
            }
            for client in clients { try await client.connected() }
            var threads: [(sender: LoadClient, thread: String)] = []
            for index in 0..<pairs {
                let sender = clients[2 * index]
                let thread = try await sender.createDM(with: clients[2 * index + 1].account.id)
                threads.append((sender, thread))
            }
            try await Task.sleep(for: .seconds(1))
            say(
                "  rate/s   sent  delivered  lost  errors   e2e p50    p90    p99  p99.9    max (ms)   ack p50    p99   commit->recv p50    p99   within target"
            )
            var best: Int?
            for rate in rates {
                recorder.reset()
                let total = rate * duration
                let started = ContinuousClock.now
                for index in 0..<total {
                    let intended = started + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate))
                    try await Task.sleep(until: intended, clock: .continuous)
                    let (sender, thread) = threads[index % threads.count]
                    sender.send(thread: thread, step: rate, index: index, intended: intended)
                }
                // Everything still on its way gets a few seconds.
                let deadline = ContinuousClock.now + .seconds(10)
                while recorder.delivered < total, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                }
                let report = recorder.report(sent: total)
                let ok = report.lost == 0 && report.errors == 0 && report.p99 <= 100
                if ok { best = rate }
                say(
                    String(
                        format: "  %6d %6d %10d %5d %7d   %7.1f %6.1f %6.1f %6.1f %6.1f   %7.1f %6.1f   %16.1f %6.1f   %@", rate,
                        total,
                        report.delivered,
                        report.lost, report.errors, report.p50, report.p90, report.p99, report.p999, report.max, report.ackP50,
                        report.ackP99, report.afterCommitP50, report.afterCommitP99,
                        (ok ? "yes" : "no") as NSString))
            }
            say("  highest rate with p99 <= 100 ms and nothing lost: \(best.map { "\($0) msg/s" } ?? "none of those tried")")
            for client in clients { client.close() }
            group.cancelAll()
        }
    }
}

/// A registered, logged-in user.
struct Account: Sendable {
    var id: String
    var token: String

    static func register(base: String, index: Int) async throws -> Account {
        let name = "load_\(UUID().uuidString.prefix(8).lowercased())_\(index)"
        let password = "load password 1"
        _ = try await post("\(base)/api/users", ["username": name, "email": "\(name)@load.example", "password": password])
        let data = try await post("\(base)/api/login", ["login": name, "password": password])
        struct Reply: Decodable {
            struct User: Decodable { var id: String }
            var accessToken: String
            var user: User
        }
        let reply = try JSONDecoder().decode(Reply.self, from: data)
        return Account(id: reply.user.id, token: reply.accessToken)
    }

    static func post(_ url: String, _ body: [String: String]) async throws -> Data {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(body)
        return try await URLSession.shared.data(for: request).0
    }
}

/// Latencies and counts of the current step, shared by every client.
final class Recorder: Sendable {
    private struct State {
        var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var ack = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var afterCommit = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var delivered = Set<Int>()
        var errors = 0
    }

    private let state = Mutex(State())
    let origin = ContinuousClock.now

    func reset() { self.state.withLock { $0 = State() } }

    var delivered: Int { self.state.withLock { $0.delivered.count } }

    func received(index: Int, intendedNanoseconds: Int64, createdAt: Date?) {
        let afterCommit = createdAt.map { Date().timeIntervalSince($0) * 1_000_000 }
        let now = (ContinuousClock.now - self.origin)
        let elapsed = now.components.seconds * 1_000_000_000 + now.components.attoseconds / 1_000_000_000 - intendedNanoseconds
        self.state.withLock { state in
            guard state.delivered.insert(index).inserted else { return }
            state.latency.record(UInt64(max(elapsed, 0) / 1000))
            if let afterCommit { state.afterCommit.record(UInt64(max(afterCommit, 0))) }
        }
    }

    func acked(after duration: Duration, ok: Bool) {
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        self.state.withLock { state in
            if ok { state.ack.record(UInt64(max(micros, 0))) } else { state.errors += 1 }
        }
    }

    struct Report {
        var delivered, lost, errors: Int
        var p50, p90, p99, p999, max, ackP50, ackP99, afterCommitP50, afterCommitP99: Double
    }

    func report(sent: Int) -> Report {
        self.state.withLock { state in
            func ms(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double {
                Double(histogram.valueAtPercentile(percentile)) / 1000
            }
            return Report(
                delivered: state.delivered.count, lost: sent - state.delivered.count, errors: state.errors,
                p50: ms(state.latency, 50), p90: ms(state.latency, 90), p99: ms(state.latency, 99),
                p999: ms(state.latency, 99.9), max: Double(state.latency.max) / 1000, ackP50: ms(state.ack, 50),
                ackP99: ms(state.ack, 99),
                afterCommitP50: ms(state.afterCommit, 50), afterCommitP99: ms(state.afterCommit, 99))
        }
    }
}

/// One user's Socket.IO client: a WebSocket with the Engine.IO / Socket.IO framing written by
/// hand (open, CONNECT with the token, ping/pong, events, acks).
final class LoadClient: Sendable {
    let account: Account
    private let recorder: Recorder
    private let outgoing: AsyncStream<String>.Continuation
    private let outgoingStream: AsyncStream<String>
    private let pending = Mutex<[Int: (started: ContinuousClock.Instant, reply: (@Sendable (JSONValue?) -> Void)?)]>([:])
    private let nextAck = Atomic(1)
    private let ready = Mutex<CheckedContinuation<Void, any Error>?>(nil)
    private let isConnected = Atomic(false)
    private let highestSeq = Atomic(0)

    init(account: Account, recorder: Recorder) {
        self.account = account
        self.recorder = recorder
        (self.outgoingStream, self.outgoing) = AsyncStream.makeStream(of: String.self)
    }

    func run(url: String, logger: Logger) async throws {
        try await WebSocketClient.connect(url: url, logger: logger) { inbound, outbound, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await frame in self.outgoingStream { try await outbound.write(.text(frame)) }
                }
                // Acknowledges what arrived, at most every 250 ms, as a client would.
                group.addTask {
                    var acked = 0
                    while (try? await Task.sleep(for: .milliseconds(250))) != nil {
                        let highest = self.highestSeq.load(ordering: .relaxed)
                        if highest > acked {
                            acked = highest
                            self.emit("ack_events", #"{"upToSeq":\#(highest)}"#, reply: nil, counted: false)
                        }
                    }
                }
                var messages = inbound.messages(maxSize: 1 << 24).makeAsyncIterator()
                while let message = try await messages.next() {
                    guard case .text(let text) = message else { continue }
                    self.handle(text)
                }
                group.cancelAll()
            }
        }
    }

    func connected() async throws {
        if self.isConnected.load(ordering: .acquiring) { return }
        try await withCheckedThrowingContinuation { continuation in
            self.ready.withLock { $0 = continuation }
            if self.isConnected.load(ordering: .acquiring) {
                let waiting = self.ready.withLock { continuation -> CheckedContinuation<Void, any Error>? in
                    defer { continuation = nil }
                    return continuation
                }
                waiting?.resume()
            }
        }
    }

    func close() { self.outgoing.finish() }

    private func handle(_ text: String) {
        if text.hasPrefix("0{") {
            self.outgoing.yield(#"40{"token":"\#(self.account.token)"}"#)
        } else if text == "2" {
            self.outgoing.yield("3")
        } else if text.hasPrefix("40") {
            self.isConnected.store(true, ordering: .releasing)
            let waiting = self.ready.withLock { continuation -> CheckedContinuation<Void, any Error>? in
                defer { continuation = nil }
                return continuation
            }
            waiting?.resume()
        } else if text.hasPrefix("43") {
            let digits = text.dropFirst(2).prefix { $0.isNumber }
            guard let id = Int(digits), let entry = self.pending.withLock({ $0.removeValue(forKey: id) }) else { return }
            let reply = try? JSONValue.parse(text.dropFirst(2 + digits.count))
            let first: JSONValue? = if case .array(let items)? = reply { items.first } else { nil }
            self.recorder.acked(after: ContinuousClock.now - entry.started, ok: first?["ok"] == .bool(true))
            entry.reply?(first)
        } else if text.hasPrefix("42") {
            guard case .array(let items)? = try? JSONValue.parse(text.dropFirst(2)), items.count >= 2,
                items[0].stringValue == "message_created", case .number(let seq)? = items[1]["seq"],
                let body = items[1]["data"]?["message"]?["body"]?.stringValue
            else { return }
            // Body: "load <index> <intended ns>" (only the recipients' copies are counted).
            let parts = body.split(separator: " ")
            if parts.count == 3, let index = Int(parts[1]), let intended = Int64(parts[2]),
                items[1]["data"]?["message"]?["senderId"]?.stringValue != self.account.id
            {
                let createdAt = (items[1]["data"]?["message"]?["createdAt"]?.stringValue).flatMap {
                    try? Date($0, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
                }
                self.recorder.received(index: index, intendedNanoseconds: intended, createdAt: createdAt)
            }
            self.highestSeq.max(Int(seq), ordering: .relaxed)
        }
    }

    private func emit(_ event: String, _ payloadJSON: String, reply: (@Sendable (JSONValue?) -> Void)?, counted: Bool) {
        let id = self.nextAck.add(1, ordering: .relaxed).oldValue
        if counted || reply != nil { self.pending.withLock { $0[id] = (ContinuousClock.now, reply) } }
        self.outgoing.yield(#"42\#(id)["\#(event)",\#(payloadJSON)]"#)
    }

    func createDM(with user: String) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            self.emit(
                "create_conversation", #"{"type":"DM","memberIds":["\#(user)"]}"#,
                reply: { reply in
                    if let id = reply?["data"]?["thread"]?["id"]?.stringValue {
                        continuation.resume(returning: id)
                    } else {
                        continuation.resume(throwing: LoadError.refused(reply?.jsonText ?? "no reply"))
                    }
                }, counted: false)
        }
    }

    func send(thread: String, step: Int, index: Int, intended: ContinuousClock.Instant) {
        let offset = intended - self.recorder.origin
        let nanoseconds = offset.components.seconds * 1_000_000_000 + offset.components.attoseconds / 1_000_000_000
        self.emit(
            "create_message",
            #"{"threadId":"\#(thread)","clientMessageId":"s\#(step)-m\#(index)","body":"load \#(index) \#(nanoseconds)"}"#,
            reply: nil, counted: true)
    }
}

enum LoadError: Error {
    case refused(String)
}

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
