import NIOCore
import NIOHTTP1
import NIOWebSocket

/// Serves an Engine.IO WebSocket upgrade that comes after other requests on a keep-alive
/// connection. NIO's upgrade handler looks at a connection's first request only, but clients may
/// upgrade on a connection they used before: aiohttp, under python-socketio's `AsyncClient`,
/// sends the upgrade on the connection its polling handshake went over.
///
/// It sits on the HTTP side of a connection for the connection's life, between the HTTP/1 codec
/// and the application, and passes everything through, until an upgrade request for the engine
/// arrives while no response is in progress. Then it answers 101 itself (the request never
/// reaches the application), takes the HTTP handlers out of the pipeline, itself included, and
/// puts the WebSocket ones in front of the application's: that handler sees nothing more, and
/// ends with the connection. A request that asks to switch protocols and is not switched (an
/// upgrade the engine refuses, another protocol) is answered by the application and closes the
/// connection, as NIO's decoder reads nothing after it.
final class KeepAliveUpgradeHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A WebSocket upgrade request, held (with what followed it) until the responses before it
    /// ended and the upgrader decided.
    private struct HeldUpgrade {
        var head: HTTPRequestHead
        var parts: [HTTPServerRequestPart] = []
        var complete = false
        var deciding = false
    }

    /// Requests handed to the application whose responses have not ended. The application may
    /// write a response's end after the client read the whole response (its body has a length)
    /// and sent its next request, so an upgrade can come before the count is back to zero.
    private var inFlight = 0
    /// Set by a request that asks to switch protocols and goes to the application: its response
    /// closes the connection, as NIO's HTTP decoder reads no more requests after it.
    private var closeWhenAnswered = false
    /// Set at the end of a request that asks to switch protocols (one held for the upgrader
    /// included): NIO's HTTP decoder reads nothing after it, and would pile up what comes next,
    /// without a bound, until the answer (up to a long-poll's 25 s; a review in the forty-fourth
    /// session). No read is asked for meanwhile (`readWanted` notes one); an upgrade asks again.
    private var readsStopped = false
    private var readWanted = false
    private var held: HeldUpgrade?
    private var upgraded = false
    private let upgrader: NIOTypedWebSocketServerUpgrader<EngineHTTPChannel.Upgrade>
    private let engine: EngineServer
    /// The application's HTTP handlers between this one and the application's own.
    private let httpHandlers: [any RemovableChannelHandler]

    init(
        upgrader: NIOTypedWebSocketServerUpgrader<EngineHTTPChannel.Upgrade>, engine: EngineServer,
        httpHandlers: [any RemovableChannelHandler]
    ) {
        self.upgrader = upgrader
        self.engine = engine
        self.httpHandlers = httpHandlers
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Upgraded, what still comes this way is not HTTP: bytes a client sent before it had the
        // 101, which the decoder hands on when it leaves.
        guard !self.upgraded else { return }
        let part = self.unwrapInboundIn(data)
        if var upgrade = self.held {
            upgrade.parts.append(part)
            if case .end = part {
                upgrade.complete = true
                self.readsStopped = true
            }
            self.held = upgrade
            self.decideWhenReady(context: context)
            return
        }
        if case .head(let head) = part {
            if Self.asksForWebSocket(head) {
                self.held = HeldUpgrade(head: head)
                return
            }
            self.inFlight += 1
            if Self.switchesProtocols(head) { self.closeWhenAnswered = true }
        }
        if case .end = part, self.closeWhenAnswered { self.readsStopped = true }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        guard self.readsStopped else { return context.read() }
        self.readWanted = true
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !self.upgraded else {
            context.write(data, promise: promise)  // WebSocket frames
            return
        }
        let lastResponse = self.closeWhenAnswered && self.inFlight == 1
        switch self.unwrapOutboundIn(data) {
        case .head(var head) where lastResponse:
            head.headers.replaceOrAdd(name: "connection", value: "close")
            context.write(self.wrapOutboundOut(.head(head)), promise: promise)
        case .end where lastResponse:
            self.inFlight = 0
            // Closed once the answer is out: closing at once could drop what is not written yet.
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            written.futureResult.cascade(to: promise)
            context.writeAndFlush(data, promise: written)
        case .end:
            // An answer to a request the decoder could not read has an end but no request.
            self.inFlight = max(0, self.inFlight - 1)
            context.write(data, promise: promise)
            self.decideWhenReady(context: context)
        default:
            context.write(data, promise: promise)
        }
    }

    /// A WebSocket handshake: a request to switch to `websocket`, without a body (one with a body
    /// is not a handshake, and holding its body could take any amount of memory).
    static func asksForWebSocket(_ head: HTTPRequestHead) -> Bool {
        Self.switchesProtocols(head) && head.headers[canonicalForm: "upgrade"].contains { $0.lowercased() == "websocket" }
            && !head.headers.contains(name: "transfer-encoding")
            && head.headers["content-length"].allSatisfy { $0.trimmingCharacters(in: .whitespaces) == "0" }
    }

    /// Whether NIO's HTTP decoder takes `head` for a switch of protocols (llhttp's rule).
    private static func switchesProtocols(_ head: HTTPRequestHead) -> Bool {
        head.method == .CONNECT
            || (head.headers.contains(name: "upgrade")
                && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" })
    }

    /// Once the held upgrade request is complete and no response is in progress: upgrades if the
    /// upgrader accepts it (it checks the WebSocket headers and asks the engine), or else hands
    /// the request to the application, which answers it as HTTP. Either runs as a task of its
    /// own on the loop, out of the decoder's read and of the application's write.
    private func decideWhenReady(context: ChannelHandlerContext) {
        guard var upgrade = self.held, upgrade.complete, !upgrade.deciding, self.inFlight == 0 else { return }
        upgrade.deciding = true
        self.held = upgrade
        let loop = context.eventLoop.assumeIsolated()
        self.upgrader.buildUpgradeResponse(channel: context.channel, upgradeRequest: upgrade.head, initialResponseHeaders: [:])
            .hop(to: context.eventLoop).assumeIsolated()
            .whenComplete { result in
                loop.execute {
                    self.held = nil
                    switch result {
                    case .success(let headers):
                        self.upgraded = true
                        self.upgrade(context: context, head: upgrade.head, headers: headers)
                        self.readsStopped = false
                        if self.readWanted {
                            self.readWanted = false
                            context.read()
                        }
                    case .failure:
                        self.inFlight += 1
                        self.closeWhenAnswered = true
                        context.fireChannelRead(self.wrapInboundOut(.head(upgrade.head)))
                        for part in upgrade.parts { context.fireChannelRead(self.wrapInboundOut(part)) }
                        context.fireChannelReadComplete()
                    }
                }
            }
    }

    private func upgrade(context: ChannelHandlerContext, head: HTTPRequestHead, headers: HTTPHeaders) {
        // The client sends no frame before it has the 101, so nothing is read between the answer
        // and the new handlers; the answer goes through the HTTP encoder before it is taken out.
        context.writeAndFlush(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .switchingProtocols, headers: headers))),
            promise: nil)
        do {
            // The WebSocket codec goes in front of the HTTP decoder first, so that what the
            // client sends next reaches it. Then the HTTP handlers leave before the engine's
            // handshake is written (it goes out from the pipeline's end, through where they
            // were); this one leaves last and lets the handshake through, and drops the bytes
            // the decoder hands on as it leaves.
            let pipeline = context.pipeline.syncOperations
            // No `WebSocketProtocolErrorHandler`: the engine's handler answers errors itself.
            let frames = ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: self.engine.configuration.maxPayload))
            try pipeline.addHandlers([WebSocketFrameEncoder(), frames], position: .first)
            for handler in self.httpHandlers { _ = pipeline.removeHandler(handler) }
            if let expect = try? pipeline.context(handlerType: ExpectContinueHandler.self) {
                _ = pipeline.removeHandler(context: expect)
            }
            _ = pipeline.removeHandler(context: try pipeline.context(handlerType: HTTPResponseEncoder.self))
            // The decoder leaves in a task of its own, handing on what it holds beyond the
            // request (bytes sent before the 101): this handler drops them, so it leaves only
            // after the decoder (the application's handler, next, takes HTTP parts only).
            let decoder = try pipeline.context(handlerType: ByteToMessageHandler<HTTPRequestDecoder>.self)
            pipeline.removeHandler(context: decoder).hop(to: context.eventLoop).assumeIsolated().whenComplete { _ in
                _ = context.pipeline.syncOperations.removeHandler(context: context)
            }
            try self.engine.attachWebSocket(to: context.channel, head: head, position: .after(frames))
        } catch {
            // On an open connection, the pipeline was not what this handler expects: a bug, not
            // the client's doing. A connection the client closed meanwhile is nothing to report.
            self.engine.logger.log(
                level: context.channel.isActive ? .error : .debug, "WebSocket upgrade failed; connection closed",
                metadata: ["error": "\(error)"])
            context.close(promise: nil)
        }
    }
}
