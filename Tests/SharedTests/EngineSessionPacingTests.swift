import Logging
import NIOCore
import NIOPosix
import NIOWebSocket
import SocketIOProtocol
import Synchronization
import Testing

@testable import SocketIOServer

/// ``EngineSession/waitForRoom()`` on a WebSocket whose channel is on another event loop than
/// the session (a session upgraded from long-polling).
@Suite("Pacing a session's writes", .timeLimit(.minutes(1)))
struct EngineSessionPacingTests {
    struct NoLayerAbove: EngineSessionDelegate {
        func engineSession(_ session: isolated EngineSession, didReceive message: EngineMessage) {}
        func engineSessionDidClose(_ session: isolated EngineSession, reason: String) {}
    }

    /// Tells the session when its channel takes writes again, as the engine's WebSocket handler
    /// does.
    final class WritabilityRelay: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let session: EngineSession

        init(session: EngineSession) {
            self.session = session
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable { self.session.onLoop { $0.webSocketBecameWritable() } }
            context.fireChannelWritabilityChanged()
        }
    }

    @Test("a WebSocket on another loop has no room until the writes queued to it ran there and drained")
    func waitsForWritesQueuedToAnotherLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let session = EngineSession(
            id: "e", eventLoop: loops[0], configuration: EngineConfiguration(), logger: Logger(label: "test"))
        // The client's end reads nothing until told to.
        let peer = Mutex<(any Channel)?>(nil)
        let server = try await ServerBootstrap(group: loops[0])
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelInitializer { channel in
                peer.withLock { $0 = channel }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let webSocket = try await ClientBootstrap(group: loops[1])
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        WebSocketFrameEncoder(), WritabilityRelay(session: session))
                }
            }
            .connect(to: server.localAddress!).get()
        await session.start(delegate: NoLayerAbove(), webSocket: EngineWebSocket(channel: webSocket))

        // 32 MiB: past what the socket buffers take.
        let megabyte = String(repeating: "x", count: 1 << 20)
        await session.send(Array(repeating: EngineIOPacket.message(megabyte), count: 32))
        let reading = Atomic(false)
        let waited = Task {
            await session.waitForRoom()
            return reading.load(ordering: .relaxed)
        }
        try await Task.sleep(for: .milliseconds(300))
        reading.store(true, ordering: .relaxed)
        let client = try #require(peer.withLock { $0 })
        try await client.setOption(ChannelOptions.autoRead, value: true).get()
        #expect(await waited.value, "the wait returned before the client read anything")
        #expect(!(await session.isClosed))

        await session.close(reason: "test", notifyClient: false)
        try? await webSocket.close().get()
        try? await client.close().get()
        try? await server.close().get()
        try await group.shutdownGracefully()
    }
}
