import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import SocketIOProtocol
import Synchronization

/// What the client sent when it opened its Engine.IO session.
public struct EngineHandshake: Sendable {
    public var headers: HTTPFields
    public var query: [String: String]
    public var remoteAddress: String?
}

/// An Engine.IO v4 server: HTTP long-polling and WebSocket (direct, or upgraded from polling)
/// on one path, sessions by `sid`, heartbeats, `maxPayload`, CORS.
public final class EngineServer: Sendable {
    public let configuration: EngineConfiguration
    let logger: Logger
    /// Where polling sessions run (a WebSocket session runs on its connection's loop).
    private let eventLoopGroup: any EventLoopGroup
    private let sessions = Mutex<[String: EngineSession]>([:])
    /// Set by ``closeAllSessions()``: no session opens after it. A client that reconnects at
    /// once would otherwise land here again, on a server that is stopping, and its WebSocket
    /// would hold the server's shutdown up until the client left.
    private let closing = Atomic(false)
    private let isReady: @Sendable () -> Bool
    private let makeDelegate: @Sendable (EngineSession, EngineHandshake) -> any EngineSessionDelegate

    /// `makeDelegate` gives each new session the layer above it (Socket.IO). No session opens
    /// while `isReady` is false (a layer above that cannot serve yet): the handshake gets 503 and
    /// a WebSocket is refused, which stock clients take for a lost transport and retry with
    /// their backoff. (A CONNECT_ERROR would not do: socket.io-client 4 does not reconnect
    /// after one.)
    public init(
        configuration: EngineConfiguration, logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        isReady: @escaping @Sendable () -> Bool = { true },
        makeDelegate: @escaping @Sendable (EngineSession, EngineHandshake) -> any EngineSessionDelegate
    ) {
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.isReady = isReady
        self.makeDelegate = makeDelegate
    }

    /// Whether new sessions open: the server is not closing, and the layer above is ready.
    private var opensSessions: Bool {
        !self.closing.load(ordering: .acquiring) && self.isReady()
    }

    /// Open sessions.
    public var sessionCount: Int { self.sessions.withLock { $0.count } }

    // MARK: HTTP long-polling
    //
    // A request that breaks the transport's rules (two polls or posts at once, a body that is
    // not UTF-8 or not Engine.IO) closes its session as a transport error, without the close
    // packet, as the reference server does; a close the layer above asks for tells the client.

    /// Adds GET / POST / OPTIONS of the long-polling transport at `path`.
    public func addPollingRoutes<Context: RequestContext>(to router: Router<Context>, path: RouterPath) {
        router.get(path) { request, context in
            try await self.handlePoll(
                request, remoteAddress: (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress)
        }
        router.post(path) { request, _ in
            try await self.handlePost(request)
        }
        for method in [HTTPRequest.Method.head, .put, .delete, .patch] {  // HEAD would open a session
            router.on(path, method: method) { request, _ in
                self.error(request, code: 2, "Bad handshake method")
            }
        }
        router.on(path, method: .options) { request, _ in
            var response = Response(status: .noContent)
            self.addCORS(to: &response, request: request)
            response.headers[.accessControlAllowMethods] = "GET, POST, OPTIONS"
            response.headers[.accessControlAllowHeaders] = request.headers[.accessControlRequestHeaders] ?? "content-type"
            return response
        }
    }

    /// The transports a request may name; another is code 0, "Transport unknown".
    private static let transports: Set<String> = ["polling", "websocket"]

    // The checks go in the reference server's order (its `verify`): the transport (0), then with
    // a sid the session (1) and whether the request's transport is the session's (3), and
    // without one, a handshake, which must be a GET (2) of polling (3). Until the fifty-second
    // session a POST without a sid, or with another transport, was told "Session ID unknown",
    // and a GET for a session on WebSocket too (a review).

    private func handlePoll(_ request: Request, remoteAddress: String?) async throws -> Response {
        let query = Self.query(request.uri)
        guard query["EIO"] == "4" else { return self.error(request, code: 5, "Unsupported protocol version") }
        guard let transport = query["transport"], Self.transports.contains(transport) else {
            return self.error(request, code: 0, "Transport unknown")
        }
        guard let sid = query["sid"] else {
            // A WebSocket this server did not take (see ``UnservedUpgradeFilter``) comes here too:
            // while no session opens it is told so, as the polling handshake is.
            guard transport == "polling" else {
                guard self.opensSessions else {
                    return self.error(request, code: 3, "Server unavailable", status: .serviceUnavailable)
                }
                return self.error(request, code: 3, "Bad request")
            }
            guard
                let session = await self.openPollingSession(
                    EngineHandshake(headers: request.headers, query: query, remoteAddress: remoteAddress))
            else { return self.error(request, code: 3, "Server unavailable", status: .serviceUnavailable) }
            let upgrades = self.configuration.allowUpgrades ? ["websocket"] : []
            return self.text(request, await session.handshake(upgrades: upgrades).text)
        }
        guard let session = self.session(sid) else { return self.error(request, code: 1, "Session ID unknown") }
        guard transport == "polling", await !session.isWebSocket else { return self.error(request, code: 3, "Bad request") }
        guard await session.acceptsPoll() else { return self.error(request, code: 1, "Session ID unknown") }
        do {
            let packets = try await session.poll()
            if await session.isClosed { self.forget(sid) }
            return self.text(request, EngineIOPacket.payload(packets))
        } catch {
            if error == .sessionClosed { return self.error(request, code: 1, "Session ID unknown") }
            if error.reason != "upgraded" { await session.close(reason: "overlapping polls", notifyClient: false) }
            return self.error(request, code: 3, "Bad request")
        }
    }

    private func handlePost(_ request: Request) async throws -> Response {
        let query = Self.query(request.uri)
        guard query["EIO"] == "4" else { return self.error(request, code: 5, "Unsupported protocol version") }
        guard let transport = query["transport"], Self.transports.contains(transport) else {
            return self.error(request, code: 0, "Transport unknown")
        }
        guard let sid = query["sid"] else { return self.error(request, code: 2, "Bad handshake method") }
        guard let session = self.session(sid), await !session.closeIfPingOverdue() else {
            return self.error(request, code: 1, "Session ID unknown")
        }
        // A session that moved to WebSocket (or began on it) takes nothing over polling: its sid
        // may have been seen in the polling URLs, and a POST would run commands as its user.
        // Refused like the reference server's transport mismatch; the session goes on.
        guard transport == "polling", await !session.isWebSocket else { return self.error(request, code: 3, "Bad request") }
        // Engine.IO v4: "a client MUST NOT have more than one active POST request"; one that
        // does gets 400 and loses its session (two at once ran their commands out of order).
        guard await session.beginPost() else {
            await session.close(reason: "overlapping posts", notifyClient: false)
            return self.error(request, code: 3, "Bad request")
        }
        let response = await self.receivePost(request, session: session, sid: sid)
        await session.endPost()
        return response
    }

    private func receivePost(_ request: Request, session: EngineSession, sid: String) async -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: self.configuration.maxPayload)
        } catch {
            // python-engineio puts everything it has queued in one POST, whatever `maxPayload`
            // says: closed without the close packet, its client reconnects.
            await session.close(reason: "payload too large", notifyClient: false)
            return self.error(request, code: 3, "Payload too large", status: .contentTooLarge)
        }
        guard let text = UTF8Text.string(body.readableBytesView) else {
            await session.close(reason: "invalid UTF-8", notifyClient: false)
            return self.error(request, code: 3, "Bad request")
        }
        do {
            let packets = try EngineIOPacket.parsePayload(text)
            guard await session.receive(payload: packets) else { return self.error(request, code: 3, "Bad request") }
            await session.holdPostWhilePaused()
        } catch {
            self.logger.info("closing a session after a malformed payload", metadata: ["eio.sid": "\(sid)", "error": "\(error)"])
            await session.close(reason: "malformed payload", notifyClient: false)
            return self.error(request, code: 3, "Bad request")
        }
        return self.text(request, "ok")
    }

    // MARK: WebSocket

    /// The HTTP/1.1 server to run this engine on: WebSocket upgrades at `webSocketPath` are
    /// served by the engine on the connection's event loop (no task per connection); every other
    /// request goes to the application's router.
    public func httpServer(webSocketPath: String, http1: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            EngineHTTPChannel(responder: responder, engine: self, webSocketPath: webSocketPath, configuration: http1)
        }
    }

    /// Whether a WebSocket upgrade request for `uri` is one of ours: Engine.IO 4 over WebSocket,
    /// opening a session or upgrading an open one.
    func acceptsWebSocket(uri: String) -> Bool {
        guard !self.closing.load(ordering: .acquiring) else { return false }
        let query = Self.query(URI(uri))
        guard query["EIO"] == "4", query["transport"] == "websocket" else { return false }
        if let sid = query["sid"] { return self.session(sid) != nil }
        return self.isReady()
    }

    private static let upgradeHeaders: Set<String> = [
        "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
        "accept-encoding", "cache-control", "pragma",
    ]

    /// Serves an upgraded WebSocket connection: opens its session (the handshake goes out at
    /// once), or joins the polling session named by `sid`, which then upgrades. The engine's
    /// handlers go at `position` in the pipeline, after the WebSocket frame codec.
    func attachWebSocket(
        to channel: any Channel, head: HTTPRequestHead, position: ChannelPipeline.SynchronousOperations.Position = .last
    ) throws {
        let query = Self.query(URI(head.uri))
        // One read per wake-up keeps one read buffer per connection (NIO pools one per read of
        // a wake-up): WebSocket frames here are small, and most connections are idle.
        try channel.syncOptions?.setOption(ChannelOptions.maxMessagesPerRead, value: 1)
        // The frame aggregator and the engine's handler, for `session` (`upgrading` it from polling).
        func addHandlers(for session: EngineSession, upgrading: Bool) throws {
            let aggregator = NIOWebSocketFrameAggregator(
                minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16,
                maxAccumulatedFrameSize: self.configuration.maxPayload)
            let handler = EngineWebSocketHandler(
                session: session, upgrading: upgrading, maximumBacklog: self.configuration.maximumBacklog,
                probeTimeout: TimeAmount(self.configuration.upgradeTimeout), logger: self.logger)
            try channel.pipeline.syncOperations.addHandlers([aggregator, handler], position: position)
        }
        if let sid = query["sid"] {
            guard let session = self.session(sid) else { throw EngineIOProtocolError("Session ID unknown") }
            try addHandlers(for: session, upgrading: true)
            return
        }
        // The session keeps the handshake's headers for the layer above (authentication); the
        // ones that only served the upgrade itself are left out.
        var headers = HTTPFields()
        for header in head.headers where !Self.upgradeHeaders.contains(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        let handshake = EngineHandshake(headers: headers, query: query, remoteAddress: channel.remoteAddress?.ipAddress)
        guard let session = self.makeSession(on: channel.eventLoop) else {
            throw EngineIOProtocolError("server is shutting down")
        }
        let webSocket = EngineWebSocket(channel: channel)
        do {
            try addHandlers(for: session, upgrading: false)
        } catch {
            self.forget(session.id)  // never started: nothing would ever close it
            throw error
        }
        session.assumeIsolated { session in
            session.start(delegate: self.delegate(for: session, handshake: handshake), webSocket: webSocket)
            webSocket.write([session.handshake(upgrades: [])])
        }
    }

    // MARK: Sessions

    /// Registers and starts a polling session before its handshake goes out, so the client's
    /// first message always finds it ready.
    private func openPollingSession(_ handshake: EngineHandshake) async -> EngineSession? {
        guard let session = self.makeSession(on: self.eventLoopGroup.next()) else { return nil }
        await session.start(delegate: self.delegate(for: session, handshake: handshake), webSocket: nil)
        return session
    }

    /// A new registered session, or nil once the server is closing.
    func makeSession(on eventLoop: any EventLoop) -> EngineSession? {
        guard self.opensSessions else { return nil }
        let session = EngineSession(
            id: RandomID.make(), eventLoop: eventLoop, configuration: self.configuration, logger: self.logger)
        self.sessions.withLock { $0[session.id] = session }
        // Closing began meanwhile: its list of sessions to close may have been taken before this
        // one was in it, so it does not open at all.
        guard !self.closing.load(ordering: .acquiring) else {
            self.forget(session.id)
            return nil
        }
        return session
    }

    private func delegate(for session: EngineSession, handshake: EngineHandshake) -> ForgettingDelegate {
        ForgettingDelegate(inner: self.makeDelegate(session, handshake), server: self)
    }

    /// Closes every session (on shutdown); no session opens after it. The clients are not sent
    /// Engine.IO's close packet, which stock clients take for a disconnect they must not undo
    /// (python-engineio and the JavaScript client do not reconnect after it): a WebSocket gets
    /// its close frame and a pending poll its noop, and each client, finding its transport gone,
    /// reconnects, to another replica if there is one, and resumes from its `lastSeq`.
    public func closeAllSessions() async {
        self.closing.store(true, ordering: .releasing)
        let all = self.sessions.withLock { Array($0.values) }
        for session in all { await session.close(reason: "server shutdown", notifyClient: false) }
    }

    private func session(_ id: String) -> EngineSession? {
        self.sessions.withLock { $0[id] }
    }

    fileprivate func forget(_ id: String) {
        _ = self.sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// How long a closed session that owes a poll its answer stays known (see
    /// ``EngineSession/finalPoll``); the poll forgets it as soon as it is answered.
    static let closedSessionLinger = TimeAmount.seconds(1)

    fileprivate func forget(_ session: isolated EngineSession) {
        guard session.finalPoll != nil else {
            self.forget(session.id)
            return
        }
        let id = session.id
        session.eventLoop.scheduleTask(in: Self.closedSessionLinger) { self.forget(id) }
    }

    private static func query(_ uri: URI) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in uri.queryParameters { result[String(key)] = String(value) }
        return result
    }

    // MARK: Responses

    private func text(_ request: Request, _ body: String) -> Response {
        var response = Response(
            status: .ok, headers: [.contentType: "text/plain; charset=UTF-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        self.addCORS(to: &response, request: request)
        return response
    }

    private func error(_ request: Request, code: Int, _ message: String, status: HTTPResponse.Status = .badRequest) -> Response {
        var response = Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"code":\#(code),"message":"\#(message)"}"#)))
        self.addCORS(to: &response, request: request)
        return response
    }

    private func addCORS(to response: inout Response, request: Request) {
        guard let origin = self.configuration.corsOrigin else { return }
        response.headers[.accessControlAllowOrigin] = origin == "*" ? (request.headers[.origin] ?? "*") : origin
        if origin == "*", request.headers[.origin] != nil { response.headers[.accessControlAllowCredentials] = "true" }
    }
}

/// Removes a closed session from the server before telling the layer above.
private struct ForgettingDelegate: EngineSessionDelegate {
    let inner: any EngineSessionDelegate
    let server: EngineServer

    func engineSession(_ session: isolated EngineSession, didReceive message: EngineMessage) {
        self.inner.engineSession(session, didReceive: message)
    }

    func engineSessionDidClose(_ session: isolated EngineSession, reason: String) {
        self.server.forget(session)
        self.inner.engineSessionDidClose(session, reason: reason)
    }
}
