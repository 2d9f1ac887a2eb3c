import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import SocketIOProtocol

/// What an Engine.IO session tells the layer above it.
public protocol EngineSessionDelegate: Sendable {
    func engineSession(_ session: EngineSession, didReceive message: EngineMessage) async
    func engineSessionDidClose(_ session: EngineSession, reason: String) async
}

/// A message of the layer above Engine.IO.
public enum EngineMessage: Sendable, Hashable {
    case text(String)
    case binary([UInt8])
}

/// One Engine.IO session (`sid`) over long-polling, WebSocket, or polling upgraded to
/// WebSocket. Packets to the client go through one ordered queue, so a Socket.IO packet and its
/// binary attachments are never split by another message.
public actor EngineSession {
    public nonisolated let id: String
    let configuration: EngineConfiguration
    let logger: Logger
    private var delegate: (any EngineSessionDelegate)?
    private var outbox: [EngineIOPacket] = []
    private var waitingPoll: CheckedContinuation<[EngineIOPacket], any Error>?
    private var webSocket: WebSocketOutboundWriter?
    private var pumping = false
    private var upgrading = false
    private let openedAt = ContinuousClock.now
    /// When the unanswered ping went out, if one is out.
    private var pingSentAt: ContinuousClock.Instant?
    private var heartbeat: Task<Void, Never>?
    public private(set) var isClosed = false

    init(id: String, configuration: EngineConfiguration, logger: Logger) {
        self.id = id
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "eio.sid"] = .string(id)
        self.logger = logger
    }

    func start(delegate: any EngineSessionDelegate, webSocket: WebSocketOutboundWriter?) {
        self.delegate = delegate
        self.webSocket = webSocket
        let interval = self.configuration.pingInterval
        let timeout = self.configuration.pingTimeout
        // Ping `pingInterval` after the session opened and after each pong; a pong must come
        // within `pingTimeout`. Requests also check the deadline (`closeIfPingOverdue`), so a
        // late client is refused exactly at the deadline, not at the timer's next tick.
        let openedAt = self.openedAt
        self.heartbeat = Task { [weak self] in
            var next = openedAt + interval
            while !Task.isCancelled {
                try? await Task.sleep(until: next)
                guard let self, await !self.isClosed else { return }
                let sentAt = await self.sendPing()
                while await self.pingSentAt != nil {
                    if ContinuousClock.now - sentAt >= timeout || Task.isCancelled {
                        await self.close(reason: "ping timeout", notifyClient: false)
                        return
                    }
                    try? await Task.sleep(for: .milliseconds(5))
                }
                next = ContinuousClock.now + interval
            }
        }
    }

    private func sendPing() -> ContinuousClock.Instant {
        let now = ContinuousClock.now
        self.pingSentAt = now
        self.send([.ping("")])
        return now
    }

    /// Closes the session when its ping went unanswered past `pingTimeout`; true if it is closed.
    func closeIfPingOverdue() -> Bool {
        if let sentAt = self.pingSentAt, ContinuousClock.now - sentAt >= self.configuration.pingTimeout {
            self.close(reason: "ping timeout", notifyClient: false)
        }
        return self.isClosed
    }

    /// The handshake packet.
    func handshake(upgrades: [String]) -> EngineIOPacket {
        let upgradesJSON = upgrades.map { "\"\($0)\"" }.joined(separator: ",")
        return .open(
            #"{"sid":"\#(self.id)","upgrades":[\#(upgradesJSON)],"pingInterval":\#(EngineConfiguration.milliseconds(self.configuration.pingInterval)),"pingTimeout":\#(EngineConfiguration.milliseconds(self.configuration.pingTimeout)),"maxPayload":\#(self.configuration.maxPayload)}"#
        )
    }

    // MARK: To the client

    /// Queues messages of the layer above, in order.
    public func send(_ messages: [EngineMessage]) {
        self.send(
            messages.map { message in
                switch message {
                case .text(let text): .message(text)
                case .binary(let bytes): .binary(bytes)
                }
            })
    }

    func send(_ packets: [EngineIOPacket]) {
        guard !self.isClosed else { return }
        self.outbox += packets
        self.flush()
    }

    private func flush() {
        // While an upgrade is under way the queue waits for the WebSocket.
        if let poll = self.waitingPoll, !self.outbox.isEmpty, !self.upgrading {
            self.waitingPoll = nil
            poll.resume(returning: self.takePollPayload())
        } else if self.webSocket != nil, !self.upgrading, !self.pumping, !self.outbox.isEmpty {
            self.pumping = true
            Task { await self.pump() }
        }
    }

    private func pump() async {
        while let writer = self.webSocket, !self.outbox.isEmpty {
            let packets = self.outbox
            self.outbox = []
            do {
                for packet in packets {
                    switch packet {
                    case .binary(let bytes): try await writer.write(.binary(ByteBuffer(bytes: bytes)))
                    default: try await writer.write(.text(packet.text))
                    }
                }
            } catch {
                self.close(reason: "transport error", notifyClient: false)
            }
        }
        self.pumping = false
    }

    // MARK: Long-polling

    /// Packets in one polling response, at most. python-engineio clients abort a connection whose
    /// response carries more than 16 (`Payload.max_decode_packets`); the rest waits for the
    /// next GET, which those clients send at once.
    static let maximumPacketsPerPoll = 16

    private func takePollPayload() -> [EngineIOPacket] {
        let packets = Array(self.outbox.prefix(Self.maximumPacketsPerPoll))
        self.outbox.removeFirst(packets.count)
        return packets
    }

    /// A GET: the queued packets, waiting for some if there are none. A second concurrent GET
    /// is a protocol violation.
    func poll() async throws(EngineIOProtocolError) -> [EngineIOPacket] {
        guard self.waitingPoll == nil else { throw EngineIOProtocolError("overlapping polls") }
        if self.isClosed { return [.close] }
        // During an upgrade a poll only gets a noop, so the client can finish the upgrade; a
        // client that already sent `5` on the WebSocket gets its poll refused instead, so give
        // that message a moment to land.
        if self.upgrading {
            for _ in 0..<20 where self.upgrading {
                try? await Task.sleep(for: .milliseconds(5))
            }
            guard self.upgrading || self.webSocket == nil else { throw EngineIOProtocolError("upgraded") }
            return [.noop]
        }
        if !self.outbox.isEmpty {
            return self.takePollPayload()
        }
        do {
            return try await withCheckedThrowingContinuation { self.waitingPoll = $0 }
        } catch {
            throw (error as? EngineIOProtocolError) ?? EngineIOProtocolError("poll failed")
        }
    }

    /// A POST: packets from the client.
    func receive(payload: [EngineIOPacket]) async {
        for packet in payload { await self.receive(packet) }
    }

    // MARK: From the client

    func receive(_ packet: EngineIOPacket) async {
        guard !self.isClosed else { return }
        switch packet {
        case .pong:
            self.pingSentAt = nil
        case .ping(let data) where data == "probe" && self.upgrading:
            break  // handled by the WebSocket upgrade
        case .ping(let data):
            self.send([.pong(data)])
        case .message(let text):
            await self.delegate?.engineSession(self, didReceive: .text(text))
        case .binary(let bytes):
            await self.delegate?.engineSession(self, didReceive: .binary(bytes))
        case .close:
            self.close(reason: "client close", notifyClient: false)
        case .upgrade, .noop, .open:
            break
        }
    }

    // MARK: Upgrade to WebSocket

    /// The probe of an upgrade arrived on the new WebSocket: answer it and make the pending poll
    /// return (with a noop) so the client can finish the upgrade.
    func beginUpgrade(writer: WebSocketOutboundWriter) async throws {
        self.upgrading = true
        try await writer.write(.text(EngineIOPacket.pong("probe").text))
        // A client that sends `5` right after the probe should see its pending poll refused,
        // not answered: give that message a moment before releasing the poll with a noop.
        Task {
            try? await Task.sleep(for: .milliseconds(100))
            self.releasePollDuringUpgrade()
        }
    }

    private func releasePollDuringUpgrade() {
        guard self.upgrading, let poll = self.waitingPoll else { return }
        self.waitingPoll = nil
        poll.resume(returning: [.noop])
    }

    /// The client sent `5`: from now on everything goes over the WebSocket.
    func completeUpgrade(writer: WebSocketOutboundWriter) {
        self.webSocket = writer
        self.upgrading = false
        if let poll = self.waitingPoll {
            self.waitingPoll = nil
            poll.resume(throwing: EngineIOProtocolError("upgraded"))
        }
        self.flush()
    }

    var isWebSocket: Bool { self.webSocket != nil && !self.upgrading }

    /// Whether the session uses, or is moving to, a WebSocket (a second upgrade is refused).
    var hasWebSocket: Bool { self.webSocket != nil || self.upgrading }

    // MARK: Closing

    /// Closes the session (telling the client, unless it is gone) and tells the delegate once.
    public func close(reason: String, notifyClient: Bool = true) {
        guard !self.isClosed else { return }
        if notifyClient { self.outbox.append(.close) }
        self.isClosed = true
        self.heartbeat?.cancel()
        if let poll = self.waitingPoll {
            // A client that closed gets a noop to end its pending poll; otherwise the close.
            self.waitingPoll = nil
            let limit = Self.maximumPacketsPerPoll
            let closing = self.outbox.count <= limit ? self.outbox : Array(self.outbox.prefix(limit - 1)) + [.close]
            poll.resume(returning: notifyClient ? closing : [.noop])
            self.outbox = []
        }
        let writer = self.webSocket
        let outbox = self.outbox
        self.outbox = []
        let delegate = self.delegate
        self.delegate = nil
        self.logger.debug("engine session closed", metadata: ["reason": "\(reason)"])
        Task {
            if let writer {
                for packet in outbox where packet == .close { try? await writer.write(.text(packet.text)) }
                try? await writer.close(.normalClosure, reason: nil)
            }
            await delegate?.engineSessionDidClose(self, reason: reason)
        }
    }
}
