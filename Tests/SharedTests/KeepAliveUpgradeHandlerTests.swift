import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization
import Testing

@testable import SocketIOServer

/// ``KeepAliveUpgradeHandler`` on a test channel, between NIO's HTTP/1 codec and a stand-in for
/// the application: when a later request on a connection is an upgrade, what happens to one the
/// engine refuses, and to the bytes a client sends too early. (A test event loop that can run
/// the engine's session actors; stock clients go through it end to end in the e2e suite.)
@Suite("WebSocket upgrades later on a keep-alive connection")
struct KeepAliveUpgradeHandlerTests {
    /// The application: records the requests it was handed; a read it cannot take (not HTTP)
    /// would crash the test, as it would crash NIOAsyncChannel's handler.
    final class Application: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        let requests: Requests

        init(_ requests: Requests) { self.requests = requests }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = self.unwrapInboundIn(data) { self.requests.uris.withLock { $0.append(head.uri) } }
        }
    }

    final class Requests: Sendable {
        let uris = Mutex<[String]>([])
        var all: [String] { self.uris.withLock { $0 } }
    }

    struct NoLayerAbove: EngineSessionDelegate {
        func engineSession(_ session: isolated EngineSession, didReceive message: EngineMessage) {}
        func engineSessionDidClose(_ session: isolated EngineSession, reason: String) {}
    }

    /// Counts the reads that reach the socket's end of the pipeline.
    final class ReadCounter: ChannelOutboundHandler, Sendable {
        typealias OutboundIn = Any
        let count = Atomic(0)

        func read(context: ChannelHandlerContext) {
            self.count.add(1, ordering: .relaxed)
            context.read()
        }
    }

    let requests = Requests()
    let channel = NIOAsyncTestingChannel()
    let reads = ReadCounter()

    init() async throws {
        let engine = EngineServer(configuration: .init(), logger: Logger(label: "test")) { _, _ in NoLayerAbove() }
        let (requests, reads) = (self.requests, self.reads)
        try await self.channel.testingEventLoop.executeInContext { [channel] in
            let encoder = HTTPResponseEncoder()
            try channel.pipeline.syncOperations.addHandlers(
                reads, encoder,
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)),
                KeepAliveUpgradeHandler(
                    upgrader: EngineHTTPChannel.webSocketUpgrader(engine: engine, path: "/socket.io/"), engine: engine,
                    httpHandlers: []),
                Application(requests))
        }
        try await self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 5000))
    }

    func send(_ request: String) async throws {
        try await self.channel.writeInbound(ByteBuffer(string: request))
        await self.channel.testingEventLoop.run()
    }

    func written() async throws -> String {
        var written = ""
        while let buffer = try await self.channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: buffer) }
        return written
    }

    func respond(_ status: HTTPResponseStatus, end: Bool = true) async throws -> String {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "content-length", value: "0")
        try await self.channel.writeOutbound(HTTPServerResponsePart.head(head))
        if end { try await self.channel.writeOutbound(HTTPServerResponsePart.end(nil)) }
        await self.channel.testingEventLoop.run()
        return try await self.written()
    }

    func endResponse() async throws {
        try await self.channel.writeOutbound(HTTPServerResponsePart.end(nil))
        await self.channel.testingEventLoop.run()
    }

    /// Whether a read asked for at the application's end reaches the socket.
    func readReachesTheSocket() async throws -> Bool {
        let before = self.reads.count.load(ordering: .relaxed)
        self.channel.read()
        await self.channel.testingEventLoop.run()
        return self.reads.count.load(ordering: .relaxed) > before
    }

    func has<Handler: ChannelHandler & SendableMetatype>(_ type: Handler.Type) async throws -> Bool {
        try await self.channel.testingEventLoop.executeInContext { [channel] in
            (try? channel.pipeline.syncOperations.context(handlerType: type)) != nil
        }
    }

    static func upgrade(_ uri: String, extraHeaders: String = "") -> String {
        "GET \(uri) HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\(extraHeaders)\r\n"
    }

    static let refusedUpgrade = Self.upgrade("/socket.io/?EIO=4&transport=websocket&sid=unknown")

    @Test("plain requests pass through, one after the other, and the connection stays open")
    func plainRequests() async throws {
        try await self.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await self.respond(.ok)
        try await self.send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = try await self.respond(.ok)
        #expect(self.requests.all == ["/a", "/b"])
        #expect(!answer.lowercased().contains("connection: close"))
        #expect(self.channel.isActive)
    }

    @Test("an upgrade that comes before the previous response's end waits for it")
    func upgradeWaitsForTheResponse() async throws {
        try await self.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await self.respond(.ok, end: false)  // the client has the whole response; its end is not written yet
        try await self.send(Self.refusedUpgrade)
        #expect(self.requests.all == ["/healthz"])
        try await self.endResponse()
        #expect(self.requests.all == ["/healthz", "/socket.io/?EIO=4&transport=websocket&sid=unknown"])
    }

    @Test("a refused upgrade goes to the application, and its answer closes the connection")
    func refusedUpgradeCloses() async throws {
        try await self.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await self.respond(.ok)
        try await self.send(Self.refusedUpgrade)
        #expect(self.requests.all.count == 2)
        let answer = try await self.respond(.badRequest)
        #expect(answer.hasPrefix("HTTP/1.1 400"))
        #expect(answer.lowercased().contains("connection: close"))
        #expect(!self.channel.isActive)
    }

    @Test("an accepted upgrade with bytes after it in the same read: they are dropped, and the HTTP side leaves")
    func acceptedUpgradeWithTrailingBytes() async throws {
        try await self.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await self.respond(.ok)
        try await self.send(Self.upgrade("/socket.io/?EIO=4&transport=websocket") + "x")
        let written = try await self.written()
        #expect(written.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"), "\(written)")
        #expect(written.contains(#"{"sid":"#), "the engine's handshake follows the 101")
        #expect(self.requests.all == ["/healthz"])
        #expect(try await !self.has(KeepAliveUpgradeHandler.self))
        #expect(try await !self.has(HTTPResponseEncoder.self))
        #expect(try await !self.has(ByteToMessageHandler<HTTPRequestDecoder>.self))
        #expect(self.channel.isActive)
        try await self.channel.close()
    }

    @Test("a frame over maxPayload gets one close frame, 1009, and what the client still sends is dropped")
    func oversizedFrame() async throws {
        try await self.send(Self.upgrade("/socket.io/?EIO=4&transport=websocket"))
        #expect(try await self.written().hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        // A masked text frame announcing 2,000,000 bytes (maxPayload is 1,000,000), then some of them.
        var header: [UInt8] = [0x81, 0x80 | 127]
        header += withUnsafeBytes(of: UInt64(2_000_000).bigEndian, Array.init)
        header += [1, 2, 3, 4]
        try await self.channel.writeInbound(ByteBuffer(bytes: header + Array(repeating: 0x61, count: 1000)))
        try await self.channel.writeInbound(ByteBuffer(bytes: Array(repeating: 0x61, count: 1000)))
        await self.channel.testingEventLoop.run()
        var written: [UInt8] = []
        while let buffer = try await self.channel.readOutbound(as: ByteBuffer.self) { written += Array(buffer.readableBytesView) }
        #expect(written == [0x88, 0x02, 0x03, 0xF1], "one close frame with code 1009, nothing else")
    }

    @Test("an upgrade request with a body is no handshake: the application answers it, and the connection closes")
    func upgradeWithABody() async throws {
        try await self.send(Self.upgrade("/socket.io/?EIO=4&transport=websocket", extraHeaders: "Content-Length: 3\r\n") + "abc")
        #expect(self.requests.all == ["/socket.io/?EIO=4&transport=websocket"])
        let answer = try await self.respond(.badRequest)
        #expect(answer.lowercased().contains("connection: close"))
        #expect(!self.channel.isActive)
    }

    @Test("a request to switch to another protocol is answered as HTTP, and closes the connection")
    func otherProtocolCloses() async throws {
        try await self.send("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
        #expect(self.requests.all == ["/chat"])
        let answer = try await self.respond(.ok)
        #expect(answer.lowercased().contains("connection: close"))
        #expect(!self.channel.isActive)
    }

    /// NIO's HTTP decoder reads nothing after a request that asks to switch protocols; what came
    /// next piled up in it without a bound until the answer closed the connection (a review in
    /// the forty-fourth session).
    @Test("after a request to switch protocols that the application answers, no read is asked for")
    func noReadsAfterASwitchingRequest() async throws {
        try await self.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try await self.readReachesTheSocket())
        _ = try await self.respond(.ok)
        try await self.send("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
        #expect(try await !self.readReachesTheSocket())
    }

    @Test("an upgrade held for a response asks for no read until it is done, then reads again")
    func heldUpgradeReadsAgainOnceDone() async throws {
        try await self.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        _ = try await self.respond(.ok, end: false)
        try await self.send(Self.upgrade("/socket.io/?EIO=4&transport=websocket"))
        #expect(try await !self.readReachesTheSocket())
        let before = self.reads.count.load(ordering: .relaxed)
        try await self.endResponse()
        #expect(try await self.written().contains("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(self.reads.count.load(ordering: .relaxed) > before, "the read asked for while held was not asked again")
        #expect(try await self.readReachesTheSocket())
        try await self.channel.close()
    }
}
