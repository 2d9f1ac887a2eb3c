import Logging
import NIOCore
import NIOWebSocket
import SocketIOProtocol

/// The WebSocket under an Engine.IO session: writes packets as frames on its channel, from any
/// thread (off the channel's loop the write is queued to it, in call order).
struct EngineWebSocket: Sendable {
    let channel: any Channel

    func write(_ packets: [EngineIOPacket]) {
        guard !packets.isEmpty else { return }
        let channel = self.channel
        if channel.eventLoop.inEventLoop {
            Self.write(packets, to: channel)
        } else {
            channel.eventLoop.execute { Self.write(packets, to: channel) }
        }
    }

    /// Turns reading from the connection off or on (TCP then holds the client's writes back).
    func setReading(_ on: Bool) {
        // Turning it back on reads at once. It fails only on a closed channel: nothing to do.
        self.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    /// Sends `packets`, then a close frame (normal closure), and closes the connection (see
    /// ``EngineWebSocketHandler``, "Closing").
    func close(sending packets: [EngineIOPacket]) {
        let channel = self.channel
        channel.eventLoop.execute {
            Self.write(packets, to: channel)
            EngineWebSocketHandler.close(channel, code: .normalClosure)
        }
    }

    private static func write(_ packets: [EngineIOPacket], to channel: any Channel) {
        for packet in packets {
            let frame: WebSocketFrame =
                switch packet {
                case .binary(let bytes): WebSocketFrame(fin: true, opcode: .binary, data: channel.allocator.buffer(bytes: bytes))
                default: WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(string: packet.text))
                }
            channel.write(frame, promise: nil)
        }
        channel.flush()
    }
}

/// Reads the WebSocket frames of one connection into its Engine.IO session, on the channel's
/// event loop, without a task: text frames are parsed as Engine.IO packets, binary frames are
/// binary packets, pings are answered, a close frame is echoed and ends the connection.
///
/// A WebSocket opened with the `sid` of a polling session first carries the upgrade (`2probe`,
/// then `5`); one that sends no `2probe` within `upgradeTimeout` is closed (until the
/// forty-second session it stayed open for good, outside every session's heartbeat, and anyone
/// with a polling sid could pile such connections up). Bad input (invalid UTF-8, a malformed packet, an oversized message) closes only
/// this connection. Writes that pile up on a client that does not read close it too
/// (``EngineBacklog``: more than `maximumBacklog` bytes queued on the channel while it is not
/// writable and none taken by the socket for a while, or eight times that in any case): durable
/// events come back through the client's catch-up.
///
/// Closing: the first close frame written (by this handler, or by the session through
/// ``EngineWebSocket``) ends the writing side; any later one is dropped. Once it is sent, the
/// connection shuts its output (the client reads the close frame, then the end of the stream)
/// and goes on reading, and dropping, what the client still sends, until the client closes or
/// ``lingering`` has passed. Closing at once would reset a connection with unread input (a
/// client still sending the rest of an oversized frame), and the reset made clients lose the
/// close frame and its code; browsers' and `ws`'s servers linger the same way. A close frame
/// not written within ``lingering`` (queued behind what a client does not read) ends the
/// connection without it.
final class EngineWebSocketHandler: ChannelDuplexHandler, RemovableChannelHandler {
    /// How long a closed connection keeps reading what its client still sends.
    static let lingering = TimeAmount.seconds(5)

    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    enum Stage {
        /// Waiting for `2probe` on a WebSocket that upgrades a polling session.
        case awaitingProbe
        /// Probe answered; waiting for `5`.
        case awaitingUpgrade
        /// The session's transport.
        case open
        case closed
    }

    /// The event that ends a connection still waiting for `2probe`.
    private struct ProbeTimedOut {}

    private let session: EngineSession
    private var stage: Stage
    private let maximumBacklog: Int
    private let probeTimeout: TimeAmount
    /// When the channel last lost its writability, or a write made while it was not writable
    /// last reached the socket, whichever is later (set on the channel's loop, the latter from
    /// the writes' promises).
    private var progress: NIOLoopBoundBox<NIODeadline>?
    /// A close frame went out: nothing is read or written any more.
    private var closing = false
    /// The data of the latest ping that came while the channel was not writable, answered once
    /// it is.
    private var owedPong: ByteBuffer?
    private let logger: Logger

    init(session: EngineSession, upgrading: Bool, maximumBacklog: Int, probeTimeout: TimeAmount, logger: Logger) {
        self.session = session
        self.stage = upgrading ? .awaitingProbe : .open
        self.maximumBacklog = maximumBacklog
        self.probeTimeout = probeTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.progress = NIOLoopBoundBox(.now(), eventLoop: context.eventLoop)
        guard case .awaitingProbe = self.stage else { return }
        let webSocket = EngineWebSocket(channel: context.channel)
        self.session.onLoop { _ = $0.refusesUpgrade(to: webSocket) }
        // Past the probe, the session's own upgrade timer takes over (``EngineSession``).
        let channel = context.channel
        context.eventLoop.scheduleTask(in: self.probeTimeout) {
            channel.pipeline.fireUserInboundEventTriggered(ProbeTimedOut())
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.closing else { return }
        let frame = self.unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            guard let text = UTF8Text.string(frame.unmaskedData.readableBytesView) else {
                self.fail(context, "invalid UTF-8", code: .dataInconsistentWithMessage)
                return
            }
            self.receive(text: text, context: context)
        case .binary:
            guard case .open = self.stage else {
                self.fail(context, "binary frame during the upgrade", code: .protocolError)
                return
            }
            let bytes = Array(frame.unmaskedData.readableBytesView)
            let channel = context.channel
            self.session.onLoop { $0.receive(.binary(bytes), over: channel) }
        case .ping:
            // While the channel is not writable only the latest ping is answered, once it is
            // (RFC 6455 5.5.3 allows it): each pong queued cost a hundred bytes or more and was
            // counted as its two (a review in the forty-sixth session). Through this handler's
            // own `write`, where the backlog bound is: written past it, the pongs to a client
            // that pings and never reads waited without end (the forty-fourth session's).
            guard context.channel.isWritable else {
                self.owedPong = frame.unmaskedData
                return
            }
            self.writePong(frame.unmaskedData, context: context)
        case .pong:
            break
        case .connectionClose:
            self.endSession(reason: "transport close", channel: context.channel)
            Self.close(context.channel, code: .normalClosure)
        default:
            self.fail(context, "unexpected opcode \(frame.opcode)", code: .protocolError)
        }
    }

    private func receive(text: String, context: ChannelHandlerContext) {
        switch self.stage {
        case .open:
            do {
                let packet = try EngineIOPacket.parse(text)
                let channel = context.channel
                self.session.onLoop { $0.receive(packet, over: channel) }
            } catch {
                self.fail(context, "malformed packet", code: .dataInconsistentWithMessage)
            }
        case .awaitingProbe:
            guard text == "2probe" else {
                self.fail(context, "upgrade without a probe", code: .protocolError)
                return
            }
            self.stage = .awaitingUpgrade
            let webSocket = EngineWebSocket(channel: context.channel)
            self.session.onLoop { session in
                if !session.refusesUpgrade(to: webSocket) { session.beginUpgrade(webSocket) }
            }
        case .awaitingUpgrade:
            guard text == "5" else {
                self.fail(context, "upgrade not completed", code: .protocolError)
                return
            }
            // Open from here on as far as this handler knows; the session takes what comes
            // next only if the upgrade completed on this WebSocket (``EngineSession/receive(_:over:)``).
            self.stage = .open
            let webSocket = EngineWebSocket(channel: context.channel)
            self.session.onLoop { $0.completeUpgrade(webSocket) }
        case .closed:
            break
        }
    }

    /// Closes this connection after bad input (and the session with it, unless the connection
    /// was only probing an upgrade).
    private func fail(_ context: ChannelHandlerContext, _ reason: String, code: WebSocketErrorCode) {
        self.logger.info(
            "closing a WebSocket after bad input", metadata: ["eio.sid": "\(self.session.id)", "reason": "\(reason)"])
        self.endSession(reason: reason, channel: context.channel)
        Self.close(context.channel, code: code)
    }

    /// Ends what this connection was to its session: the session itself when the connection is
    /// its transport; only the upgrade when it was probing (the session goes on polling).
    private func endSession(reason: String, channel: any Channel) {
        let stage = self.stage
        self.stage = .closed
        switch stage {
        case .open:
            self.session.onLoop { $0.transportEnded(channel, reason: reason) }
        case .awaitingUpgrade:
            let webSocket = EngineWebSocket(channel: channel)
            self.session.onLoop { $0.abandonUpgrade(webSocket) }
        case .awaitingProbe, .closed:
            break  // a failed probe leaves the polling session as it was
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.endSession(reason: "transport close", channel: context.channel)
        context.fireChannelInactive()
    }

    /// The client closed its side of the connection without a close frame (the channel allows
    /// half-closure): nothing more comes, so the connection ends.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ProbeTimedOut {
            if case .awaitingProbe = self.stage, !self.closing { self.fail(context, "no probe in time", code: .policyViolation) }
            return
        }
        if case .inputClosed? = event as? ChannelEvent {
            self.endSession(reason: "transport close", channel: context.channel)
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // While closing, the frame decoder reports each read it drops (it stopped at the error
        // that closed the connection): that is the lingering, nothing new.
        guard !self.closing else { return }
        // An oversized or malformed frame, or a broken connection: it ends only this connection.
        self.logger.debug("WebSocket error", metadata: ["eio.sid": "\(self.session.id)", "error": "\(error)"])
        self.endSession(reason: "transport error", channel: context.channel)
        let tooLarge =
            error is NIOWebSocketFrameAggregator.Error || (error as? NIOWebSocketError) == .invalidFrameLength
        Self.close(context.channel, code: tooLarge ? .messageTooLarge : .protocolError)
    }

    // MARK: Writes

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.closing else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        if self.unwrapOutboundIn(data).opcode == .connectionClose {
            self.closing = true
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            let channel = context.channel
            // A client that does not read never takes the frame, queued behind what it did not
            // read: the connection then ends without it. Until the forty-fourth session nothing
            // more was written once the session had closed, so nothing checked the backlog
            // again, and the connection stayed open for as long as the client's TCP did (a
            // review).
            let unwritten = context.eventLoop.scheduleTask(in: Self.lingering) { channel.close(promise: nil) }
            written.futureResult.whenComplete { result in
                unwritten.cancel()
                guard case .success = result else { return channel.close(promise: nil) }
                Self.linger(channel)
            }
            context.write(data, promise: written)
            return
        }
        guard !context.channel.isWritable, let progress = self.progress else {
            context.write(data, promise: promise)
            return
        }
        // What still waits for the socket, this frame included: a client that reads as fast as
        // it is written to keeps it small however much was written.
        let queued = (try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)) ?? 0
        let backlog = queued + self.unwrapOutboundIn(data).length
        let bound = EngineBacklog(limit: self.maximumBacklog)
        if let problem = bound.problem(bytes: backlog, sinceProgress: .now() - progress.value) {
            promise?.fail(ChannelError.outputClosed)
            guard self.stage != .closed else { return }
            self.logger.info(
                "closing a WebSocket whose client \(problem.rawValue)",
                metadata: ["eio.sid": "\(self.session.id)", "backlog": "\(backlog)"])
            self.endSession(reason: "client \(problem.rawValue)", channel: context.channel)
            context.close(promise: nil)
            return
        }
        let written = promise ?? context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenSuccess { progress.value = .now() }
        context.write(data, promise: written)
    }

    private func writePong(_ data: ByteBuffer, context: ChannelHandlerContext) {
        self.write(
            context: context, data: self.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: data)),
            promise: nil)
        context.flush()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            if let pong = self.owedPong, !self.closing {
                self.owedPong = nil
                self.writePong(pong, context: context)
            }
            self.session.onLoop { $0.webSocketBecameWritable() }
        } else {
            self.progress?.value = .now()  // a stretch of backlog starts
        }
        context.fireChannelWritabilityChanged()
    }

    /// Sends a close frame with `code`; the handler then closes the connection ("Closing").
    static func close(_ channel: any Channel, code: WebSocketErrorCode) {
        var data = channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: code)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: data), promise: nil)
    }

    /// After the close frame: the output ends, the input is read (and dropped) until the client
    /// closes, for ``lingering`` at most.
    private static func linger(_ channel: any Channel) {
        // Reading may be paused (a client that sent faster than its commands ran): the rest of
        // what it sends, and the end of its stream, must be read now.
        channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
        channel.close(mode: .output).whenComplete { result in
            guard case .success = result else { return channel.close(promise: nil) }
            channel.eventLoop.scheduleTask(in: Self.lingering) { channel.close(promise: nil) }
        }
    }
}
