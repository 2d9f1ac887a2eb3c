import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
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
    private let logger: Logger
    private let sessions = Mutex<[String: EngineSession]>([:])
    private let makeDelegate: @Sendable (EngineSession, EngineHandshake) -> any EngineSessionDelegate

    /// `makeDelegate` gives each new session the layer above it (Socket.IO).
    public init(
        configuration: EngineConfiguration, logger: Logger,
        makeDelegate: @escaping @Sendable (EngineSession, EngineHandshake) -> any EngineSessionDelegate
    ) {
        self.configuration = configuration
        self.logger = logger
        self.makeDelegate = makeDelegate
    }

    /// Open sessions.
    public var sessionCount: Int { self.sessions.withLock { $0.count } }

    // MARK: HTTP long-polling

    /// Adds GET / POST / OPTIONS of the long-polling transport at `path`.
    public func addPollingRoutes<Context: RequestContext>(to router: Router<Context>, path: RouterPath) {
        router.get(path) { request, context in
            try await self.handlePoll(
                request, remoteAddress: (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress)
        }
        router.post(path) { request, _ in
            try await self.handlePost(request)
        }
        for method in [HTTPRequest.Method.put, .delete, .patch] {
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

    private func handlePoll(_ request: Request, remoteAddress: String?) async throws -> Response {
        let query = Self.query(request)
        guard query["EIO"] == "4" else { return self.error(request, code: 5, "Unsupported protocol version") }
        guard query["transport"] == "polling" else { return self.error(request, code: 0, "Transport unknown") }
        guard let sid = query["sid"] else {
            let session = await self.open(
                EngineHandshake(headers: request.headers, query: query, remoteAddress: remoteAddress), webSocket: nil)
            let upgrades = self.configuration.allowUpgrades ? ["websocket"] : []
            return self.text(request, await session.handshake(upgrades: upgrades).text)
        }
        guard let session = self.session(sid), await !session.isWebSocket, await !session.closeIfPingOverdue() else {
            return self.error(request, code: 1, "Session ID unknown")
        }
        do {
            let packets = try await session.poll()
            if packets.contains(.close) { self.forget(sid) }
            return self.text(request, EngineIOPacket.payload(packets))
        } catch {
            if error.reason != "upgraded" { await session.close(reason: "overlapping polls") }
            return self.error(request, code: 3, "Bad request")
        }
    }

    private func handlePost(_ request: Request) async throws -> Response {
        let query = Self.query(request)
        guard query["EIO"] == "4", query["transport"] == "polling", let sid = query["sid"], let session = self.session(sid),
            await !session.closeIfPingOverdue()
        else {
            return self.error(request, code: 1, "Session ID unknown")
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: self.configuration.maxPayload)
        } catch {
            await session.close(reason: "payload too large")
            return self.error(request, code: 3, "Payload too large", status: .contentTooLarge)
        }
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            await session.close(reason: "invalid UTF-8")
            return self.error(request, code: 3, "Bad request")
        }
        do {
            await session.receive(payload: try EngineIOPacket.parsePayload(text))
        } catch {
            self.logger.info("closing a session after a malformed payload", metadata: ["eio.sid": "\(sid)", "error": "\(error)"])
            await session.close(reason: "malformed payload")
            return self.error(request, code: 3, "Bad request")
        }
        return self.text(request, "ok")
    }

    // MARK: WebSocket

    /// Adds the WebSocket transport at `path` to the router that handles upgrade requests.
    public func addWebSocketRoute<Context: WebSocketRequestContext & RequestContext>(to router: Router<Context>, path: RouterPath)
    {
        router.ws(path) { request, _ in
            let query = Self.query(request)
            guard query["EIO"] == "4", query["transport"] == "websocket" else { return .dontUpgrade }
            if let sid = query["sid"], self.session(sid) == nil { return .dontUpgrade }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let query = Self.query(context.request)
            let messages = inbound.messages(maxSize: self.configuration.maxPayload)
            if let sid = query["sid"], let session = self.session(sid) {
                // A session upgrades once: a second WebSocket for it is closed at once.
                guard await !session.hasWebSocket else {
                    try await outbound.close(.policyViolation, reason: "already upgraded")
                    return
                }
                try await self.upgrade(session, messages: messages, writer: outbound)
            } else {
                let remote = (context.requestContext as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress
                let session = await self.open(
                    EngineHandshake(headers: context.request.headers, query: query, remoteAddress: remote), webSocket: outbound)
                try await outbound.write(.text(await session.handshake(upgrades: []).text))
                try await self.serve(session, messages: messages)
            }
        }
    }

    private func upgrade(_ session: EngineSession, messages: WebSocketInboundMessageStream, writer: WebSocketOutboundWriter)
        async throws
    {
        var iterator = messages.makeAsyncIterator()
        guard case .text(let probe) = try await iterator.next(), probe == "2probe" else { return }
        try await session.beginUpgrade(writer: writer)
        guard case .text(let upgrade) = try await iterator.next(), upgrade == "5" else {
            await session.close(reason: "upgrade failed")
            return
        }
        await session.completeUpgrade(writer: writer)
        try await self.serve(session, iterator: &iterator)
    }

    private func serve(_ session: EngineSession, messages: WebSocketInboundMessageStream) async throws {
        var iterator = messages.makeAsyncIterator()
        try await self.serve(session, iterator: &iterator)
    }

    private func serve(_ session: EngineSession, iterator: inout WebSocketInboundMessageStream.AsyncIterator) async throws {
        defer { self.forget(session.id) }
        do {
            while let message = try await iterator.next() {
                switch message {
                case .text(let text):
                    do {
                        await session.receive(try EngineIOPacket.parse(text))
                    } catch {
                        await session.close(reason: "malformed packet", notifyClient: false)
                        return
                    }
                case .binary(let buffer):
                    await session.receive(.binary(Array(buffer.readableBytesView)))
                }
                if await session.isClosed { return }
            }
            await session.close(reason: "transport close", notifyClient: false)
        } catch {
            // An oversized message or a broken socket ends only this session.
            await session.close(reason: "transport error: \(error)", notifyClient: false)
        }
    }

    // MARK: Sessions

    /// Registers and starts a session before its handshake goes out, so the client's first
    /// message always finds it ready.
    private func open(_ handshake: EngineHandshake, webSocket: WebSocketOutboundWriter?) async -> EngineSession {
        let session = EngineSession(id: Self.makeSessionID(), configuration: self.configuration, logger: self.logger)
        self.sessions.withLock { $0[session.id] = session }
        let delegate = ForgettingDelegate(inner: self.makeDelegate(session, handshake), server: self)
        await session.start(delegate: delegate, webSocket: webSocket)
        return session
    }

    private func session(_ id: String) -> EngineSession? {
        self.sessions.withLock { $0[id] }
    }

    fileprivate func forget(_ id: String) {
        _ = self.sessions.withLock { $0.removeValue(forKey: id) }
    }

    private static func makeSessionID() -> String {
        let bytes = (0..<15).map { _ in UInt8.random(in: 0...255) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    private static func query(_ request: Request) -> [String: String] {
        var result: [String: String] = [:]
        for (key, value) in request.uri.queryParameters { result[String(key)] = String(value) }
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

    func engineSession(_ session: EngineSession, didReceive message: EngineMessage) async {
        await self.inner.engineSession(session, didReceive: message)
    }

    func engineSessionDidClose(_ session: EngineSession, reason: String) async {
        self.server.forget(session.id)
        await self.inner.engineSessionDidClose(session, reason: reason)
    }
}
