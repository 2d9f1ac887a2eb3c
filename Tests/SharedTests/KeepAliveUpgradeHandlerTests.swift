import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import SocketIOServer

/// ``KeepAliveUpgradeHandler`` on an `EmbeddedChannel`, between NIO's HTTP/1 codec and a stand-in
/// for the application: when a later request on a connection is an upgrade, and what happens to
/// it when the engine refuses it. (Accepted upgrades are tested end to end, with stock clients.)
@Suite("WebSocket upgrades later on a keep-alive connection")
struct KeepAliveUpgradeHandlerTests {
    /// The application: what it was handed.
    final class Application: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var requests: [String] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = self.unwrapInboundIn(data) { self.requests.append(head.uri) }
        }
    }

    struct NoLayerAbove: EngineSessionDelegate {
        func engineSession(_ session: isolated EngineSession, didReceive message: EngineMessage) {}
        func engineSessionDidClose(_ session: isolated EngineSession, reason: String) {}
    }

    let application = Application()
    let channel = EmbeddedChannel()

    init() throws {
        let engine = EngineServer(configuration: .init(), logger: Logger(label: "test")) { _, _ in NoLayerAbove() }
        let encoder = HTTPResponseEncoder()
        try self.channel.pipeline.syncOperations.addHandlers(
            encoder,
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)),
            KeepAliveUpgradeHandler(
                upgrader: EngineHTTPChannel.webSocketUpgrader(engine: engine, path: "/socket.io/"), engine: engine,
                httpHandlers: []),
            self.application)
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 5000)).wait()
    }

    func send(_ request: String) throws {
        try self.channel.writeInbound(self.channel.allocator.buffer(string: request))
        self.channel.embeddedEventLoop.run()
    }

    func respond(_ status: HTTPResponseStatus, end: Bool = true) throws -> String {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "content-length", value: "0")
        try self.channel.writeOutbound(HTTPServerResponsePart.head(head))
        if end { try self.channel.writeOutbound(HTTPServerResponsePart.end(nil)) }
        self.channel.embeddedEventLoop.run()
        var written = ""
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: buffer) }
        return written
    }

    static let refusedUpgrade =
        "GET /socket.io/?EIO=4&transport=websocket&sid=unknown HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        + "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

    @Test("plain requests pass through, one after the other, and the connection stays open")
    func plainRequests() throws {
        try self.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try self.respond(.ok)
        try self.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = try self.respond(.ok)
        #expect(self.application.requests == ["/a", "/b"])
        #expect(!answer.lowercased().contains("connection: close"))
        #expect(self.channel.isActive)
    }

    @Test("an upgrade that comes before the previous response's end waits for it")
    func upgradeWaitsForTheResponse() throws {
        try self.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try self.respond(.ok, end: false)  // the client has the whole response; its end is not written yet
        try self.send(Self.refusedUpgrade)
        #expect(self.application.requests == ["/healthz"])
        try self.channel.writeOutbound(HTTPServerResponsePart.end(nil))
        self.channel.embeddedEventLoop.run()
        #expect(self.application.requests == ["/healthz", "/socket.io/?EIO=4&transport=websocket&sid=unknown"])
    }

    @Test("a refused upgrade goes to the application, and its answer closes the connection")
    func refusedUpgradeCloses() throws {
        try self.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try self.respond(.ok)
        try self.send(Self.refusedUpgrade)
        #expect(self.application.requests.count == 2)
        let answer = try self.respond(.badRequest)
        #expect(answer.hasPrefix("HTTP/1.1 400"))
        #expect(answer.lowercased().contains("connection: close"))
        #expect(!self.channel.isActive)
    }

    @Test("a request to switch to another protocol is answered as HTTP, and closes the connection")
    func otherProtocolCloses() throws {
        try self.send("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
        #expect(self.application.requests == ["/chat"])
        let answer = try self.respond(.ok)
        #expect(answer.lowercased().contains("connection: close"))
        #expect(!self.channel.isActive)
    }
}
