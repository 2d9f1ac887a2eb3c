import BenchSupport
import Foundation
import Logging
import MessengerServiceKit
import SocketIOProtocol
import Synchronization

/// One of the storm's sockets: it keeps what it received (the indices of the storm's messages,
/// with when each first arrived) and the highest seq, and when told to drop, closes its
/// WebSocket and connects again at once with `auth.lastSeq`, as a client coming back does. It
/// never acknowledges while the storm is measured, so everything it misses while away is still
/// there to replay; at the end one socket per user acknowledges everything it got, so the next
/// run does not meet this run's retries.
final class StormSocket: Sendable {
    let token: String
    private let received = Mutex([Int: ContinuousClock.Instant]())
    private let highestSeq = Atomic(0)
    private let connections = Atomic(0)
    private let state = Mutex(State())

    private enum Command {
        case drop
        case send(String)
    }

    private struct State {
        var commands: AsyncStream<Command>.Continuation?
        var droppedAt: ContinuousClock.Instant?
        var reconnectedAt: ContinuousClock.Instant?
        var stopping = false
    }

    init(token: String) { self.token = token }

    var connectionCount: Int { self.connections.load(ordering: .relaxed) }
    var seq: Int { self.highestSeq.load(ordering: .relaxed) }
    var arrivals: [Int: ContinuousClock.Instant] { self.received.withLock { $0 } }
    /// When the socket dropped, and when its new connection was accepted (CONNECT answered).
    var storm: (droppedAt: ContinuousClock.Instant?, reconnectedAt: ContinuousClock.Instant?) {
        self.state.withLock { ($0.droppedAt, $0.reconnectedAt) }
    }

    /// Connects, and connects again after every drop, until `stop()`.
    func run(endpoint: PlainWebSocket.Endpoint) async {
        while !self.state.withLock({ $0.stopping }) {
            let (commands, commander) = AsyncStream.makeStream(of: Command.self)
            self.state.withLock { $0.commands = commander }
            do {
                let channel = try await PlainWebSocket.connect(
                    to: endpoint, onText: { self.handle($0) }, onClose: { commander.finish() })
                for await command in commands {
                    switch command {
                    case .send(let text):
                        channel.writeAndFlush(PlainWebSocket.text(text, allocator: channel.allocator), promise: nil)
                    case .drop: PlainWebSocket.close(channel)
                    }
                }
            } catch {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Drops the connection (it comes back by itself).
    func drop() {
        let commands = self.state.withLock { state -> AsyncStream<Command>.Continuation? in
            state.droppedAt = .now
            state.reconnectedAt = nil
            return state.commands
        }
        commands?.yield(.drop)
    }

    /// Acknowledges every event up to the highest seq this socket got (for its user).
    func acknowledge() {
        let commands = self.state.withLock { $0.commands }
        commands?.yield(.send(#"42["ack_events",{"upToSeq":\#(self.seq)}]"#))
    }

    func stop() {
        let commands = self.state.withLock { state -> AsyncStream<Command>.Continuation? in
            state.stopping = true
            return state.commands
        }
        commands?.yield(.drop)
    }

    private func handle(_ text: String) -> String? {
        if text.hasPrefix("0{") {
            return #"40{"token":"\#(self.token)","lastSeq":\#(self.highestSeq.load(ordering: .relaxed))}"#
        } else if text == "2" {
            return "3"
        } else if text.hasPrefix("40") {
            self.connections.add(1, ordering: .relaxed)
            self.state.withLock { state in
                if state.droppedAt != nil, state.reconnectedAt == nil { state.reconnectedAt = .now }
            }
        } else if text.hasPrefix("42") {
            // 10,000 of these sockets run in this process: the two numbers are read from the
            // text's bytes in one pass, without parsing all of it (Foundation's `range(of:)` was
            // 13 % of the tool's CPU in a storm).
            let read = Self.read(text)
            if let seq = read.seq { self.highestSeq.max(seq, ordering: .relaxed) }
            if let index = read.stormIndex, text.hasPrefix(#"42["message_created""#) {
                let now = ContinuousClock.now
                self.received.withLock { received in
                    if received[index] == nil { received[index] = now }
                }
            }
        }
        return nil
    }

    /// From an event packet `42["name",{...}]`: the event's own `seq` (the key at the argument
    /// object's level: the message inside has a `seq` of its own, and keys come in any order),
    /// and the number after the first `"body":"storm `.
    static func read(_ text: String) -> (seq: Int?, stormIndex: Int?) {
        var text = text
        return text.withUTF8 { bytes in
            var seq: Int?
            var stormIndex: Int?
            var depth = 0
            var inString = false
            var escaped = false
            var index = 0
            while index < bytes.count, seq == nil || stormIndex == nil {
                let byte = bytes[index]
                if inString {
                    if escaped {
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                    }
                } else if byte == UInt8(ascii: "\"") {
                    if seq == nil, depth == 2, let value = Self.number(after: Self.seqKey, at: index, in: bytes) {
                        seq = value
                    } else if stormIndex == nil, let value = Self.number(after: Self.stormBody, at: index, in: bytes) {
                        stormIndex = value
                    }
                    inString = true
                } else if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                    depth += 1
                } else if byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") {
                    depth -= 1
                }
                index += 1
            }
            return (seq, stormIndex)
        }
    }

    private static let seqKey = Array(#""seq":"#.utf8)
    private static let stormBody = Array(#""body":"storm "#.utf8)

    /// The decimal number right after `marker`, when `marker` starts at `start`.
    private static func number(after marker: [UInt8], at start: Int, in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard bytes.count - start > marker.count else { return nil }
        for offset in 0..<marker.count where bytes[start + offset] != marker[offset] { return nil }
        var value = 0
        var index = start + marker.count
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (tens, overflow) = value.multipliedReportingOverflow(by: 10)
            guard !overflow, tens <= Int.max - 9 else { return nil }
            value = tens + Int(bytes[index] - UInt8(ascii: "0"))
            index += 1
        }
        return index > start + marker.count ? value : nil
    }
}

/// The reconnect storm: `users` users with `socketsPerUser` sockets each, one sender in a DM
/// with each of them sending at `rate` (from one socket or several, each for its share of the
/// DMs); a few seconds in, every socket drops at once and
/// reconnects with its `lastSeq`. A socket has resumed once it is connected again and holds
/// every message sent to its user until then (what it missed came through the replay); the
/// storm measures how long that took after the drop, and whether every socket ends up with
/// every message of its user.
enum ReconnectStorm {
    struct Outcome {
        var clients: Int
        var reconnected: Int
        /// From the drop to the CONNECT answer, for every socket that came back.
        var reconnectTimes: [Duration]
        var resumeTimes: [Duration]
        var sent: Int
        var expected: Int
        var received: Int
        /// Received within 15 s of the last send (the rest came later, or never).
        var receivedInTime: Int
    }

    /// When the sockets drop, after the sending began: 5 s in, or a quarter of the way in when
    /// the storm sends for less than 20 s, so that they always drop while messages flow.
    static func dropAfter(seconds: Int) -> Duration {
        .milliseconds(min(5_000, max(seconds, 1) * 250))
    }

    static func run(
        url: String, senders: [LoadClient], receivers: [Account], socketsPerUser: Int, rate: Int, seconds: Int,
        dropAfter: Duration, logger: Logger
    ) async throws -> Outcome {
        guard let endpoint = PlainWebSocket.Endpoint(url: url) else { throw PlainWebSocket.InvalidURL(url: url) }
        var threads: [String] = []
        for receiver in receivers {
            threads.append(try await senders[0].createConversation(type: "DM", with: [receiver.id]))
        }
        let sockets = receivers.map { receiver in (0..<socketsPerUser).map { _ in StormSocket(token: receiver.token) } }
        let all = sockets.flatMap { $0 }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, socket) in all.enumerated() {
                group.addTask { await socket.run(endpoint: endpoint) }
                if index % 200 == 199 { try await Task.sleep(for: .milliseconds(20)) }
            }
            let deadline = ContinuousClock.now + .seconds(120)
            while all.contains(where: { $0.connectionCount == 0 }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
            }
            let ready = all.filter { $0.connectionCount > 0 }.count
            say(
                "    storm: \(ready)/\(all.count) sockets connected; sending \(rate) msg/s for \(seconds) s, all drop after \(dropAfter)"
            )

            // Send; drop everyone once, part of the way in.
            let total = rate * seconds
            var sent: [[(index: Int, at: ContinuousClock.Instant)]] = Array(repeating: [], count: receivers.count)
            let started = ContinuousClock.now
            var dropped = false
            for index in 0..<total {
                try await LoopTimer.sleep(until: started + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate)))
                let receiver = index % receivers.count
                // One DM is always sent from the same socket, so its messages keep their order.
                senders[receiver % senders.count].send(
                    thread: threads[receiver], clientMessageId: "storm-\(index)", body: "storm \(index)")
                sent[receiver].append((index, .now))
                if !dropped, ContinuousClock.now - started >= dropAfter {
                    dropped = true
                    for socket in all { socket.drop() }
                    say("    storm: \(all.count) sockets dropped")
                }
            }
            let lastSend = ContinuousClock.now
            let expected = sockets.enumerated().reduce(0) { $0 + $1.element.count * sent[$1.offset].count }
            func receivedCount(by instant: ContinuousClock.Instant? = nil) -> Int {
                sockets.enumerated().reduce(0) { sum, entry in
                    let wanted = sent[entry.offset].map(\.index)
                    return sum
                        + entry.element.reduce(0) { count, socket in
                            let arrivals = socket.arrivals
                            return count + wanted.filter { arrivals[$0].map { instant == nil || $0 <= instant! } ?? false }.count
                        }
                }
            }
            // What is still on its way gets up to a minute.
            let drainDeadline = lastSend + .seconds(60)
            var received = receivedCount()
            while received < expected, ContinuousClock.now < drainDeadline {
                try await Task.sleep(for: .seconds(1))
                received = receivedCount()
            }
            let receivedInTime = receivedCount(by: lastSend + .seconds(15))
            // Whatever is missing is described, to tell a loss from a socket that never came back.
            do {
                var shown = 0
                var missingSockets = 0
                for (receiver, userSockets) in sockets.enumerated() {
                    for socket in userSockets {
                        let arrivals = socket.arrivals
                        let missing = sent[receiver].filter { arrivals[$0.index] == nil }
                        guard !missing.isEmpty else { continue }
                        missingSockets += 1
                        if shown < 5 {
                            shown += 1
                            let (droppedAt, reconnectedAt) = socket.storm
                            say(
                                "    missing: receiver \(receiver) socket missing \(missing.count)/\(sent[receiver].count): sent at \(missing.map { ($0.at - started).seconds }.prefix(8)); dropped \(droppedAt.map { ($0 - started).seconds } ?? -1) reconnected \(reconnectedAt.map { ($0 - started).seconds } ?? -1) connections \(socket.connectionCount) seq \(socket.seq)"
                            )
                        }
                    }
                }
                if missingSockets > 0 { say("    missing: \(missingSockets) sockets lack some of their messages") }
            }

            // How long the messages took, by the second they were sent in: to the first of their
            // user's sockets, and to the last (a storm is bounded by one or the other).
            var timeline: [Int: (first: [Double], last: [Double])] = [:]
            for (receiver, userSockets) in sockets.enumerated() {
                let arrivals = userSockets.map(\.arrivals)
                for message in sent[receiver] {
                    let times = arrivals.compactMap { $0[message.index] }
                    guard let first = times.min(), let last = times.max() else { continue }
                    let second = Int((message.at - started).seconds)
                    timeline[second, default: ([], [])].first.append((first - message.at).seconds)
                    timeline[second, default: ([], [])].last.append((last - message.at).seconds)
                }
            }
            for second in timeline.keys.sorted() {
                let entry = timeline[second]!
                func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
                say(
                    String(
                        format: "    sent in second %2d: median latency to the first socket %.2f s, to the last %.2f s", second,
                        median(entry.first), median(entry.last)))
            }

            var resumeTimes: [Duration] = []
            var reconnectTimes: [Duration] = []
            var reconnected = 0
            for (receiver, userSockets) in sockets.enumerated() {
                for socket in userSockets {
                    let (droppedAt, reconnectedAt) = socket.storm
                    guard let droppedAt, let reconnectedAt else { continue }
                    reconnected += 1
                    reconnectTimes.append(reconnectedAt - droppedAt)
                    let arrivals = socket.arrivals
                    let owed = sent[receiver].filter { $0.at <= reconnectedAt }.map { arrivals[$0.index] }
                    guard owed.allSatisfy({ $0 != nil }) else { continue }
                    let caughtUp = owed.compactMap { $0 }.filter { $0 > droppedAt }.max() ?? reconnectedAt
                    resumeTimes.append(max(caughtUp, reconnectedAt) - droppedAt)
                }
            }
            for userSockets in sockets { userSockets.first?.acknowledge() }
            try await Task.sleep(for: .seconds(2))
            for socket in all { socket.stop() }
            group.cancelAll()
            return Outcome(
                clients: all.count, reconnected: reconnected, reconnectTimes: reconnectTimes, resumeTimes: resumeTimes,
                sent: total, expected: expected,
                received: received, receivedInTime: receivedInTime)
        }
    }
}
