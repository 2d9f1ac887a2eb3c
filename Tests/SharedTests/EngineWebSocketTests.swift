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

    /// While the channel is not writable only the latest ping is answered, once it is. Until the
    /// forty-fourth session pongs were written past the handler that keeps the backlog bound, and
    /// until the forty-sixth each was queued, a hundred bytes or more counted as its two: a
    /// client that sent tiny pings and read a byte now and then made the gateway hold gigabytes.
    @Test("pings that come while the client does not read get one pong, the latest's, once it does")
    func onlyTheLatestPingIsAnswered() throws {
        let channel = try Self.openChannel(maximumBacklog: 10)
        channel.isWritable = false
        for n in 0..<1000 {
            try channel.writeInbound(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "\(n)")))
        }
        #expect(try channel.readOutbound(as: WebSocketFrame.self) == nil)
        #expect(channel.isActive)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        let pong = try #require(try channel.readOutbound(as: WebSocketFrame.self))
        #expect(pong.opcode == .pong && pong.data == ByteBuffer(string: "999"))
        #expect(try channel.readOutbound(as: WebSocketFrame.self) == nil)
        _ = try? channel.finish()
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
