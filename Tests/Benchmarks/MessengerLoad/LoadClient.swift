import BenchSupport
import Foundation
import HummingbirdWSClient
import Logging
import SocketIOProtocol
import Synchronization

/// One user's Socket.IO client: a WebSocket with the Engine.IO / Socket.IO framing written by
/// hand (open, CONNECT with the token, ping/pong, events, acks). It acknowledges what it
/// received (`ack_events`, cumulative) at most once per `ackInterval`, as an app would, and reports each `message_created`
/// of the load (body `load <step> <index> <intended ns>`) from another sender to the recorder.
final class LoadClient: Sendable {
    let account: Account
    /// This client's number among all clients (the recorder counts deliveries per slot).
    let slot: Int
    private let ackInterval: Duration
    private let recorder: Recorder
    private let outgoing: AsyncStream<String>.Continuation
    private let outgoingStream: AsyncStream<String>
    private let pending = Mutex<[Int: (started: ContinuousClock.Instant, reply: (@Sendable (JSONValue?) -> Void)?)]>([:])
    private let nextAck = Atomic(1)
    private let ready = Mutex<CheckedContinuation<Void, any Error>?>(nil)
    private let isConnected = Atomic(false)
    private let highestSeq = Atomic(0)

    init(account: Account, slot: Int, recorder: Recorder, ackInterval: Duration = .seconds(1)) {
        self.account = account
        self.slot = slot
        self.ackInterval = ackInterval
        self.recorder = recorder
        (self.outgoingStream, self.outgoing) = AsyncStream.makeStream(of: String.self)
    }

    func run(url: String, logger: Logger) async throws {
        try await WebSocketClient.connect(url: url, logger: logger) { inbound, outbound, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await frame in self.outgoingStream { try await outbound.write(.text(frame)) }
                }
                group.addTask {
                    var acked = 0
                    // Clients started together would otherwise all ack at the same instants.
                    try? await Task.sleep(for: self.ackInterval * Double.random(in: 0..<1))
                    while (try? await Task.sleep(for: self.ackInterval)) != nil {
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
            if self.isConnected.load(ordering: .acquiring) { self.resumeReady() }
        }
    }

    func close() { self.outgoing.finish() }

    private func resumeReady() {
        let waiting = self.ready.withLock { continuation -> CheckedContinuation<Void, any Error>? in
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume()
    }

    private func handle(_ text: String) {
        if text.hasPrefix("0{") {
            self.outgoing.yield(#"40{"token":"\#(self.account.token)"}"#)
        } else if text == "2" {
            self.outgoing.yield("3")
        } else if text.hasPrefix("40") {
            self.isConnected.store(true, ordering: .releasing)
            self.resumeReady()
        } else if text.hasPrefix("43") {
            let digits = text.dropFirst(2).prefix { $0.isNumber }
            guard let id = Int(digits), let entry = self.pending.withLock({ $0.removeValue(forKey: id) }) else { return }
            let reply = try? JSONValue.parse(text.dropFirst(2 + digits.count))
            let first: JSONValue? = if case .array(let items)? = reply { items.first } else { nil }
            if let callback = entry.reply {
                callback(first)
            } else {
                self.recorder.acked(after: ContinuousClock.now - entry.started, ok: first?["ok"] == .bool(true))
            }
        } else if text.hasPrefix("42") {
            guard case .array(let items)? = try? JSONValue.parse(text.dropFirst(2)), items.count >= 2,
                case .number(let seq)? = items[1]["seq"]
            else { return }
            self.highestSeq.max(Int(seq), ordering: .relaxed)
            guard items[0].stringValue == "message_created", let message = items[1]["data"]?["message"],
                message["senderId"]?.stringValue != self.account.id, let body = message["body"]?.stringValue,
                let load = LoadBody(body)
            else { return }
            self.recorder.received(step: load.step, index: load.index, slot: self.slot, intendedNanoseconds: load.intended)
        }
    }

    private func emit(_ event: String, _ payloadJSON: String, reply: (@Sendable (JSONValue?) -> Void)?, counted: Bool) {
        let id = self.nextAck.add(1, ordering: .relaxed).oldValue
        if counted || reply != nil { self.pending.withLock { $0[id] = (ContinuousClock.now, reply) } }
        self.outgoing.yield(#"42\#(id)["\#(event)",\#(payloadJSON)]"#)
    }

    /// `create_conversation`; returns the thread id.
    func createConversation(type: String, with members: [String], title: String? = nil) async throws -> String {
        let ids = members.map { "\"\($0)\"" }.joined(separator: ",")
        let titleJSON = title.map { #","title":"\#($0)""# } ?? ""
        return try await withCheckedThrowingContinuation { continuation in
            self.emit(
                "create_conversation", #"{"type":"\#(type)","memberIds":[\#(ids)]\#(titleJSON)}"#,
                reply: { reply in
                    if let id = reply?["data"]?["thread"]?["id"]?.stringValue {
                        continuation.resume(returning: id)
                    } else {
                        continuation.resume(throwing: LoadError.refused(reply?.jsonText ?? "no reply"))
                    }
                }, counted: false)
        }
    }

    /// Sends a message that the recorder does not time (its ack is not counted either).
    func send(thread: String, clientMessageId: String, body: String) {
        self.emit(
            "create_message", #"{"threadId":"\#(thread)","clientMessageId":"\#(clientMessageId)","body":"\#(body)"}"#,
            reply: nil, counted: false)
    }

    /// Sends message `index` of `step` to `thread`, stamped with its intended send time.
    func send(thread: String, step: Int, index: Int, intended: ContinuousClock.Instant) {
        let body = LoadBody(step: step, index: index, intended: self.recorder.offset(of: intended))
        self.emit(
            "create_message", #"{"threadId":"\#(thread)","clientMessageId":"s\#(step)-m\#(index)","body":"\#(body.text)"}"#,
            reply: nil, counted: true)
    }
}

/// The body of a load message: `load <step> <index> <intended ns since the recorder's origin>`.
struct LoadBody {
    var step: Int
    var index: Int
    var intended: Int64

    init(step: Int, index: Int, intended: Int64) {
        self.step = step
        self.index = index
        self.intended = intended
    }

    init?(_ text: String) {
        let parts = text.split(separator: " ")
        guard parts.count == 4, parts[0] == "load", let step = Int(parts[1]), let index = Int(parts[2]),
            let intended = Int64(parts[3])
        else { return nil }
        self.init(step: step, index: index, intended: intended)
    }

    var text: String { "load \(self.step) \(self.index) \(self.intended)" }
}

enum LoadError: Error {
    case refused(String)
}
