import BenchSupport
import Foundation
import HummingbirdWSClient
import Logging
import SocketIOProtocol
import Synchronization

/// One of the storm's sockets: it keeps what it received (the indices of the storm's messages)
/// and the highest seq, and when told to drop, closes its WebSocket and connects again at once
/// with `auth.lastSeq`, as a client coming back does. It never acknowledges, so everything it
/// misses while away is still there to replay.
final class StormSocket: Sendable {
    let token: String
    private let received = Mutex(Set<Int>())
    private let highestSeq = Atomic(0)
    private let connections = Atomic(0)
    private let state = Mutex(State())

    private struct State {
        var drop: AsyncStream<Void>.Continuation?
        var droppedAt: ContinuousClock.Instant?
        var resumedAfter: Duration?
        var stopping = false
    }

    init(token: String) { self.token = token }

    var connectionCount: Int { self.connections.load(ordering: .relaxed) }
    var receivedIndices: Set<Int> { self.received.withLock { $0 } }
    var resumedAfter: Duration? { self.state.withLock { $0.resumedAfter } }

    /// Connects, and connects again after every drop, until `stop()`.
    func run(url: String, logger: Logger) async {
        while !self.state.withLock({ $0.stopping }) {
            let (dropped, drop) = AsyncStream.makeStream(of: Void.self)
            self.state.withLock { $0.drop = drop }
            do {
                try await WebSocketClient.connect(url: url, logger: logger) { inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for await _ in dropped {
                                try await outbound.close(.goingAway, reason: nil)
                                return
                            }
                        }
                        var messages = inbound.messages(maxSize: 1 << 24).makeAsyncIterator()
                        while let message = try await messages.next() {
                            guard case .text(let text) = message else { continue }
                            if let reply = self.handle(text) { try await outbound.write(.text(reply)) }
                        }
                        group.cancelAll()
                    }
                }
            } catch {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Drops the connection (it comes back by itself).
    func drop() {
        let drop = self.state.withLock { state -> AsyncStream<Void>.Continuation? in
            state.droppedAt = .now
            state.resumedAfter = nil
            return state.drop
        }
        drop?.yield()
    }

    func stop() {
        let drop = self.state.withLock { state -> AsyncStream<Void>.Continuation? in
            state.stopping = true
            return state.drop
        }
        drop?.yield()
    }

    private func handle(_ text: String) -> String? {
        if text.hasPrefix("0{") {
            return #"40{"token":"\#(self.token)","lastSeq":\#(self.highestSeq.load(ordering: .relaxed))}"#
        } else if text == "2" {
            return "3"
        } else if text.hasPrefix("40") {
            self.connections.add(1, ordering: .relaxed)
            self.state.withLock { state in
                if let droppedAt = state.droppedAt, state.resumedAfter == nil { state.resumedAfter = .now - droppedAt }
            }
        } else if text.hasPrefix("42") {
            guard case .array(let items)? = try? JSONValue.parse(text.dropFirst(2)), items.count >= 2,
                case .number(let seq)? = items[1]["seq"]
            else { return nil }
            self.highestSeq.max(Int(seq), ordering: .relaxed)
            if items[0].stringValue == "message_created",
                let body = items[1]["data"]?["message"]?["body"]?.stringValue, body.hasPrefix("storm "),
                let index = Int(body.dropFirst(6))
            {
                _ = self.received.withLock { $0.insert(index) }
            }
        }
        return nil
    }
}

/// The reconnect storm: `users` users with `socketsPerUser` sockets each, one sender in a DM
/// with each of them sending at `rate`; a few seconds in, every socket drops at once and
/// reconnects with its `lastSeq`. Measures how soon each one is connected again, and whether
/// every socket ends up with every message of its user.
enum ReconnectStorm {
    struct Outcome {
        var clients: Int
        var resumeTimes: [Duration]
        var sent: Int
        var expected: Int
        var received: Int
    }

    static func run(
        url: String, sender: LoadClient, receivers: [Account], socketsPerUser: Int, rate: Int, seconds: Int,
        dropAfter: Duration, logger: Logger
    ) async throws -> Outcome {
        var threads: [String] = []
        for receiver in receivers {
            threads.append(try await sender.createConversation(type: "DM", with: [receiver.id]))
        }
        let sockets = receivers.map { receiver in (0..<socketsPerUser).map { _ in StormSocket(token: receiver.token) } }
        let all = sockets.flatMap { $0 }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, socket) in all.enumerated() {
                group.addTask { await socket.run(url: url, logger: logger) }
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

            // Send; drop everyone once, mid-way.
            let total = rate * seconds
            var sentTo = [Int](repeating: 0, count: receivers.count)
            var perReceiver = [[Int]](repeating: [], count: receivers.count)
            let started = ContinuousClock.now
            var dropped = false
            for index in 0..<total {
                try await Task.sleep(
                    until: started + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate)), clock: .continuous)
                let receiver = index % receivers.count
                sender.send(thread: threads[receiver], clientMessageId: "storm-\(index)", body: "storm \(index)")
                sentTo[receiver] += 1
                perReceiver[receiver].append(index)
                if !dropped, ContinuousClock.now - started >= dropAfter {
                    dropped = true
                    for socket in all { socket.drop() }
                    say("    storm: \(all.count) sockets dropped")
                }
            }
            // Everything gets 15 s more to arrive.
            let expected = sockets.enumerated().reduce(0) { $0 + $1.element.count * sentTo[$1.offset] }
            func receivedCount() -> Int {
                sockets.enumerated().reduce(0) { sum, entry in
                    let wanted = Set(perReceiver[entry.offset])
                    return sum + entry.element.reduce(0) { $0 + $1.receivedIndices.intersection(wanted).count }
                }
            }
            let drainDeadline = ContinuousClock.now + .seconds(15)
            var received = receivedCount()
            while received < expected, ContinuousClock.now < drainDeadline {
                try await Task.sleep(for: .milliseconds(500))
                received = receivedCount()
            }
            let resumeTimes = all.compactMap(\.resumedAfter)
            for socket in all { socket.stop() }
            group.cancelAll()
            return Outcome(clients: all.count, resumeTimes: resumeTimes, sent: total, expected: expected, received: received)
        }
    }
}
