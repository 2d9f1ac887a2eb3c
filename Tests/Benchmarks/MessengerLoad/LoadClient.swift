import BenchSupport
import Foundation
import Logging
import NIOCore
import SocketIOProtocol
import Synchronization

/// One user's Socket.IO client: a WebSocket with the Engine.IO / Socket.IO framing written by
/// hand (open, CONNECT with the token, ping/pong, events, acks), on a plain NIO channel
/// (`PlainWebSocket`): each frame is handled on the event loop as it arrives, with no task or
/// async sequence per frame. It acknowledges what it received (`ack_events`, cumulative) at most
/// once per `ackInterval`, as an app would, and reports each `message_created` of the load
/// (body `load <step> <index> <intended ns>`) from another sender to the recorder.
final class LoadClient: Sendable {
    let account: Account
    /// This client's number among all clients (the recorder counts deliveries per slot).
    let slot: Int
    private let ackInterval: Duration
    private let recorder: Recorder
    private let channel = Mutex<(any Channel)?>(nil)
    /// Calls waiting for their answer: when each was meant to be sent, and its rate step (a
    /// timed message) or its reply handler.
    private let pending = Mutex<[Int: (started: ContinuousClock.Instant, step: Int, reply: (@Sendable (JSONValue?) -> Void)?)]>(
        [:])
    private let nextAck = Atomic(1)
    /// Who waits in `connected()`, and why the connection ended before it was ready, if it did.
    private let ready = Mutex<(waiting: CheckedContinuation<Void, any Error>?, failure: (any Error)?)>((nil, nil))
    private let isConnected = Atomic(false)
    private let highestSeq = Atomic(0)
    private let ackedSeq = Atomic(0)

    init(account: Account, slot: Int, recorder: Recorder, ackInterval: Duration = .seconds(1)) {
        self.account = account
        self.slot = slot
        self.ackInterval = ackInterval
        self.recorder = recorder
    }

    /// Connects, and returns once the connection is closed.
    func run(url: String, logger: Logger) async throws {
        guard let endpoint = PlainWebSocket.Endpoint(url: url) else { throw PlainWebSocket.InvalidURL(url: url) }
        let channel: any Channel
        do {
            channel = try await PlainWebSocket.connect(
                to: endpoint, onText: { [self] text in self.handle(text) },
                onClose: { [self] in self.fail(LoadError.refused("the connection closed")) })
        } catch {
            self.fail(error)
            throw error
        }
        self.channel.withLock { $0 = channel }
        // CONNECT may have been answered already, before the channel was known here.
        if self.isConnected.load(ordering: .acquiring) { self.takeReady()?.resume() }
        // Clients started together would otherwise all ack at the same instants.
        let acks = channel.eventLoop.scheduleRepeatedTask(
            initialDelay: TimeAmount(self.ackInterval * Double.random(in: 0..<1)), delay: TimeAmount(self.ackInterval)
        ) { [self] _ in self.ackReceived() }
        defer { acks.cancel() }
        try await withTaskCancellationHandler {
            try await channel.closeFuture.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }

    /// Returns once the Socket.IO connection is established (and frames can be sent).
    func connected() async throws {
        if self.isReady { return }
        try await withCheckedThrowingContinuation { continuation in
            let failure = self.ready.withLock { ready -> (any Error)? in
                if ready.failure == nil { ready.waiting = continuation }
                return ready.failure
            }
            if let failure { return continuation.resume(throwing: failure) }
            if self.isReady { self.takeReady()?.resume() }
        }
    }

    private var isReady: Bool {
        self.isConnected.load(ordering: .acquiring) && self.channel.withLock({ $0 }) != nil
    }

    func close() {
        if let channel = self.channel.withLock({ $0 }) { PlainWebSocket.close(channel) }
    }

    /// `ack_events` up to the highest seq received, unless it was acknowledged already.
    private func ackReceived() {
        let highest = self.highestSeq.load(ordering: .relaxed)
        guard highest > self.ackedSeq.load(ordering: .relaxed) else { return }
        self.ackedSeq.store(highest, ordering: .relaxed)
        self.emit("ack_events", #"{"upToSeq":\#(highest)}"#, reply: nil)
    }

    private func takeReady() -> CheckedContinuation<Void, any Error>? {
        self.ready.withLock { ready in
            defer { ready.waiting = nil }
            return ready.waiting
        }
    }

    /// The connection failed or closed: a wait in `connected()`, now or later, ends with `error`
    /// instead of waiting forever (a wait after the client was ready returns at once).
    private func fail(_ error: any Error) {
        let waiting = self.ready.withLock { ready in
            if ready.failure == nil { ready.failure = error }
            defer { ready.waiting = nil }
            return ready.waiting
        }
        waiting?.resume(throwing: error)
    }

    /// Handles a frame on the channel's event loop; returns the frame to send back, if any.
    private func handle(_ text: String) -> String? {
        if text.hasPrefix("0{") {
            return #"40{"token":"\#(self.account.token)"}"#
        } else if text == "2" {
            return "3"
        } else if text.hasPrefix("40") {
            self.isConnected.store(true, ordering: .releasing)
            if self.isReady { self.takeReady()?.resume() }
        } else if text.hasPrefix("43") {
            let digits = text.dropFirst(2).prefix { $0.isNumber }
            guard let id = Int(digits), let entry = self.pending.withLock({ $0.removeValue(forKey: id) }) else { return nil }
            let reply = try? JSONValue.parse(text.dropFirst(2 + digits.count))
            let first: JSONValue? = if case .array(let items)? = reply { items.first } else { nil }
            if let callback = entry.reply {
                callback(first)
            } else {
                self.recorder.acked(
                    step: entry.step, after: ContinuousClock.now - entry.started, ok: first?["ok"] == .bool(true))
            }
        } else if text.hasPrefix("42") {
            guard case .array(let items)? = try? JSONValue.parse(text.dropFirst(2)), items.count >= 2,
                case .number(let seq)? = items[1]["seq"]
            else { return nil }
            self.highestSeq.max(Int(seq), ordering: .relaxed)
            guard items[0].stringValue == "message_created", let message = items[1]["data"]?["message"],
                message["senderId"]?.stringValue != self.account.id, let body = message["body"]?.stringValue,
                let load = LoadBody(body)
            else { return nil }
            self.recorder.received(step: load.step, index: load.index, slot: self.slot, intendedNanoseconds: load.intended)
        }
        return nil
    }

    /// `timed`: the step and intended send time of a message whose answer the recorder counts.
    private func emit(
        _ event: String, _ payloadJSON: String, reply: (@Sendable (JSONValue?) -> Void)?,
        timed: (step: Int, intended: ContinuousClock.Instant)? = nil
    ) {
        let id = self.nextAck.add(1, ordering: .relaxed).oldValue
        if let timed {
            self.pending.withLock { $0[id] = (timed.intended, timed.step, nil) }
        } else if reply != nil {
            self.pending.withLock { $0[id] = (ContinuousClock.now, -1, reply) }
        }
        self.write(#"42\#(id)["\#(event)",\#(payloadJSON)]"#)
    }

    private func write(_ frame: String) {
        guard let channel = self.channel.withLock({ $0 }) else { return }
        channel.writeAndFlush(PlainWebSocket.text(frame, allocator: channel.allocator), promise: nil)
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
                })
        }
    }

    /// Sends a message that the recorder does not time (its ack is not counted either).
    func send(thread: String, clientMessageId: String, body: String) {
        self.emit(
            "create_message", #"{"threadId":"\#(thread)","clientMessageId":"\#(clientMessageId)","body":"\#(body)"}"#,
            reply: nil)
    }

    /// Sends message `index` of `step` to `thread`, stamped with its intended send time.
    func send(thread: String, step: Int, index: Int, intended: ContinuousClock.Instant) {
        let body = LoadBody(step: step, index: index, intended: self.recorder.offset(of: intended))
        self.emit(
            "create_message", #"{"threadId":"\#(thread)","clientMessageId":"s\#(step)-m\#(index)","body":"\#(body.text)"}"#,
            reply: nil, timed: (step, intended))
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
