import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// A connection of the public HTTP/1.1 server that runs an ``EngineServer``. An Engine.IO
/// WebSocket upgrade at the engine's path leaves the connection to ``EngineWebSocketHandler``
/// in its pipeline: it costs no task while it lives, only the channel and the session. Any other
/// request is served by the application's router, as Hummingbird's HTTP/1.1 channel does; an
/// upgrade that comes after such a request (``KeepAliveUpgradeHandler``) keeps the connection's
/// HTTP task waiting until the connection closes.
struct EngineHTTPChannel: ServerChildChannel, HTTPChannelHandler {
    enum Upgrade: Sendable {
        case webSocket
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
    }

    struct Value: ServerChildChannelValue {
        let upgrade: EventLoopFuture<Upgrade>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let engine: EngineServer
    let webSocketPath: String
    let configuration: HTTP1Channel.Configuration

    /// Reads start small: the channel keeps its last read buffer for the next read, and most of
    /// the connections are idle WebSockets whose frames are a few bytes. A read that fills the
    /// buffer makes the next one larger (up to 64 KiB), so uploads still read in large chunks.
    static let readBuffers = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65_536)

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let firstRequestTimeout = self.configuration.idleTimeout ?? .seconds(60)
        return channel.eventLoop.makeCompletedFuture {
            try channel.syncOptions?.setOption(ChannelOptions.recvAllocator, value: Self.readBuffers)
            let upgrader = Self.webSocketUpgrader(engine: self.engine, path: self.webSocketPath)
            let (engine, configuration) = (self.engine, self.configuration)
            let notUpgraded = NIOTypedHTTPServerUpgradeConfiguration<Upgrade>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let httpHandlers: [any RemovableChannelHandler] =
                            [HTTP1ToHTTPServerCodec(secure: false)] + configuration.additionalChannelHandlers() + [
                                HTTPConnectionStateHandler(
                                    idleTimeout: configuration.idleTimeout.map { .init($0) }, logger: logger)
                            ]
                        try channel.pipeline.syncOperations.addHandler(ExpectContinueHandler())
                        // A later request on this connection may still upgrade.
                        try channel.pipeline.syncOperations.addHandler(
                            KeepAliveUpgradeHandler(upgrader: upgrader, engine: engine, httpHandlers: httpHandlers))
                        try channel.pipeline.syncOperations.addHandlers(httpHandlers)
                        return .http(
                            try NIOAsyncChannel(
                                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)))
                    }
                })
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration(upgradeConfiguration: notUpgraded)
            pipeline.enablePipelining = false  // NIOAsyncChannel serves one request at a time
            pipeline.enableErrorHandling = false  // Hummingbird answers errors
            pipeline.enableResponseHeaderValidation = false  // HTTPTypes validates headers
            pipeline.decoderConfiguration.maxHeaderFieldSize = configuration.httpDecoder.maxHeaderFieldSize
            pipeline.decoderConfiguration.maxHeaderListSize = configuration.httpDecoder.maxHeaderListSize
            pipeline.decoderConfiguration.maxHeaderFieldCount = configuration.httpDecoder.maxHeaderFieldCount
            let upgrade = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipeline)
            let upgradeHandler = try channel.pipeline.syncOperations.handler(
                type: NIOTypedHTTPServerUpgradeHandler<Upgrade>.self)
            let path = self.webSocketPath
            try channel.pipeline.syncOperations.addHandler(
                UnservedUpgradeFilter { head in Self.upgrades(head, engine: engine, path: path) },
                position: .before(upgradeHandler))
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(UnparsableRequestResponder(), position: .after(decoder))
            Self.close(channel, unlessItsFirstRequestComes: upgrade, within: firstRequestTimeout)
            return Value(upgrade: upgrade, channel: channel)
        }
    }

    /// Closes `channel` if its first request's head has not come through the upgrade handler
    /// (`upgrade` unresolved) within `timeout`. The idle timeout's handler comes with the first
    /// request, so a connection whose first request never arrives whole (a client gone between
    /// connect and request, a slow loris) gets the same time. Until the thirty-eighth session it
    /// was held until the client closed it.
    static func close(
        _ channel: any Channel, unlessItsFirstRequestComes upgrade: EventLoopFuture<Upgrade>, within timeout: TimeAmount
    ) {
        let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        upgrade.whenComplete { _ in timer.cancel() }
    }

    /// Upgrades Engine.IO WebSocket requests at the engine's path, the first request of a
    /// connection (through NIO's upgrade handler) or a later one (``KeepAliveUpgradeHandler``).
    static func webSocketUpgrader(engine: EngineServer, path: String) -> NIOTypedWebSocketServerUpgrader<Upgrade> {
        NIOTypedWebSocketServerUpgrader<Upgrade>(
            maxFrameSize: engine.configuration.maxPayload,
            enableAutomaticErrorHandling: false,  // EngineWebSocketHandler answers errors with a close frame
            shouldUpgrade: { channel, head in
                let ours = Self.path(of: head.uri, matches: path) && engine.acceptsWebSocket(uri: head.uri)
                return channel.eventLoop.makeSucceededFuture(ours ? HTTPHeaders() : nil)
            },
            upgradePipelineHandler: { channel, head in
                channel.eventLoop.makeCompletedFuture {
                    try engine.attachWebSocket(to: channel, head: head)
                    return .webSocket
                }
            })
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgrade.get() {
            case .webSocket:
                return  // the channel lives on in its pipeline
            case .http(let http):
                await self.handleHTTP(asyncChannel: http, logger: logger)
            }
        } catch {
            logger.debug("connection ended before its first request was served", metadata: ["error": "\(error)"])
        }
    }

    /// Whether the upgrader switches the connection of a first request `head` to the engine's
    /// WebSocket: the checks of `webSocketUpgrader` and of NIO's WebSocket upgrader.
    static func upgrades(_ head: HTTPRequestHead, engine: EngineServer, path: String) -> Bool {
        KeepAliveUpgradeHandler.asksForWebSocket(head) && head.headers["sec-websocket-version"] == ["13"]
            && head.headers["sec-websocket-key"].count == 1 && Self.path(of: head.uri, matches: path)
            && engine.acceptsWebSocket(uri: head.uri)
    }

    /// Whether the path of `uri` is `path`, with or without its trailing slash.
    static func path(of uri: String, matches path: String) -> Bool {
        let requested = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        return requested == trimmed || requested == trimmed + "/"
    }
}
