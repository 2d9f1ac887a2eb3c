import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOWebSocket
import Testing

@testable import SocketIOServer

@Suite("Engine.IO over a WebSocket")
struct EngineWebSocketTests {
    /// The pong to a WebSocket ping is written like any frame: while the client does not read,
    /// it counts against the connection's backlog bound. Until the forty-fourth session pongs
    /// were written past the handler that keeps the bound, so a client that sent pings and
    /// never read made the gateway hold their pongs without end.
    @Test("a pong to a client that does not read counts against the backlog bound, which closes the connection")
    func pongsCountAgainstTheBacklog() throws {
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: EngineConfiguration(),
            logger: Logger(label: "test"))
        let handler = EngineWebSocketHandler(
            session: session, upgrading: false, maximumBacklog: 10, probeTimeout: .seconds(10), logger: Logger(label: "test"))
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        channel.isWritable = false
        let ping = WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(repeating: 1, count: 100))
        try channel.writeInbound(ping)
        // Past the hard bound (eight times 10 bytes) at once: closed, the pong not written.
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: WebSocketFrame.self) == nil)
    }

    @Test("a client that reads gets its pong")
    func pongWhileWritable() throws {
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: EngineConfiguration(),
            logger: Logger(label: "test"))
        let handler = EngineWebSocketHandler(
            session: session, upgrading: false, maximumBacklog: 10, probeTimeout: .seconds(10), logger: Logger(label: "test"))
        let channel = EmbeddedChannel(handler: handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "hi")))
        let pong = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(pong.opcode == .pong)
        #expect(pong.data == ByteBuffer(string: "hi"))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }
}
