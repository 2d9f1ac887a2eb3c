import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import SocketIOServer

@Suite("A first request that asks for an upgrade the server does not serve")
struct UnservedUpgradeFilterTests {
    /// Counts the reads that reach the socket's end of the pipeline.
    final class ReadCounter: ChannelOutboundHandler {
        typealias OutboundIn = Any
        var count = 0

        func read(context: ChannelHandlerContext) {
            self.count += 1
            context.read()
        }
    }

    /// The application: the request heads it was handed.
    final class Application: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        var heads: [HTTPRequestHead] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .head(let head) = self.unwrapInboundIn(data) { self.heads.append(head) }
        }
    }

    func channel(_ reads: ReadCounter, _ application: Application) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers(
            reads, ByteToMessageHandler(HTTPRequestDecoder()), UnservedUpgradeFilter { _ in false }, application)
        return channel
    }

    /// NIO's HTTP decoder reads nothing after a request that asks to switch protocols: what came
    /// next piled up in it without a bound until the answer (up to a long-poll's 25 s) closed
    /// the connection (a review in the forty-fourth session).
    @Test("the request is made plain, and once it has ended no read is asked for")
    func noReadsAfterThePlainRequest() throws {
        let (reads, application) = (ReadCounter(), Application())
        let channel = try self.channel(reads, application)
        try channel.writeInbound(ByteBuffer(string: "GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"))
        #expect(application.heads.count == 1)
        #expect(application.heads.first?.headers["upgrade"] == [])
        #expect(application.heads.first?.headers["connection"] == ["close"])
        let before = reads.count
        channel.read()
        #expect(reads.count == before)
        _ = try? channel.finish()
    }

    @Test("a plain first request: the filter leaves, and reads go on")
    func plainRequestLeaves() throws {
        let (reads, application) = (ReadCounter(), Application())
        let channel = try self.channel(reads, application)
        try channel.writeInbound(ByteBuffer(string: "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(application.heads.count == 1)
        #expect((try? channel.pipeline.syncOperations.context(handlerType: UnservedUpgradeFilter.self)) == nil)
        let before = reads.count
        channel.read()
        #expect(reads.count == before + 1)
        _ = try? channel.finish()
    }
}
