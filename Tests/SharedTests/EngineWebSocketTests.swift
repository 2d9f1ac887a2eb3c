import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import NIOWebSocket
import Testing

@testable import SocketIOServer

@Suite("Engine.IO over a WebSocket")
struct EngineWebSocketTests {
    /// A connected test channel whose WebSocket is an open Engine.IO session's transport, with
    /// `socket` (if any) between it and the channel's end.
    static func openChannel(
        maximumBacklog: Int, loop: EmbeddedEventLoop = EmbeddedEventLoop(), behind socket: (any ChannelHandler)? = nil
    ) throws -> EmbeddedChannel {
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: EngineConfiguration(),
            logger: Logger(label: "test"))
        let handler = EngineWebSocketHandler(
            session: session, upgrading: false, maximumBacklog: maximumBacklog, probeTimeout: .seconds(10),
            logger: Logger(label: "test"))
        let channel = EmbeddedChannel(loop: loop)
        if let socket { try channel.pipeline.syncOperations.addHandler(socket) }
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    /// The pong to a WebSocket ping is written like any frame: while the client does not read,
    /// it counts against the connection's backlog bound. Until the forty-fourth session pongs
    /// were written past the handler that keeps the bound, so a client that sent pings and
    /// never read made the gateway hold their pongs without end.
    @Test("a pong to a client that does not read counts against the backlog bound, which closes the connection")
    func pongsCountAgainstTheBacklog() throws {
        let channel = try Self.openChannel(maximumBacklog: 10)
        channel.isWritable = false
        let ping = WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(repeating: 1, count: 100))
        try channel.writeInbound(ping)
        // Past the hard bound (eight times 10 bytes) at once: closed, the pong not written.
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: WebSocketFrame.self) == nil)
    }

    @Test("a client that reads gets its pong")
    func pongWhileWritable() throws {
        let channel = try Self.openChannel(maximumBacklog: 10)
        try channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "hi")))
        let pong = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(pong.opcode == .pong)
        #expect(pong.data == ByteBuffer(string: "hi"))
        #expect(channel.isActive)
        _ = try? channel.finish()
    }

    /// Holds every write: a socket whose client does not read.
    final class UnreadSocket: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var held: [EventLoopPromise<Void>?] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            self.held.append(promise)
        }
    }

    /// A close frame queued behind writes the client does not read is never written; until
    /// the forty-fourth session such a connection stayed open for as long as the client's TCP
    /// did (a review).
    @Test("a close frame the client never takes: the connection ends after the lingering time")
    func unwrittenCloseFrameEnds() throws {
        let loop = EmbeddedEventLoop()
        let channel = try Self.openChannel(maximumBacklog: 1 << 20, loop: loop, behind: UnreadSocket())
        EngineWebSocketHandler.close(channel, code: .goingAway)
        loop.advanceTime(by: .seconds(4))
        #expect(channel.isActive)
        loop.advanceTime(by: EngineWebSocketHandler.lingering)
        #expect(!channel.isActive)
    }
}
