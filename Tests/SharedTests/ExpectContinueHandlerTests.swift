import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import SocketIOServer

/// ``ExpectContinueHandler`` on an `EmbeddedChannel` between NIO's HTTP/1 codec and a stand-in
/// for the application.
@Suite("Expect: 100-continue")
struct ExpectContinueHandlerTests {
    final class Application: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    let channel = EmbeddedChannel()

    init() throws {
        let encoder = HTTPResponseEncoder()
        try self.channel.pipeline.syncOperations.addHandlers(
            encoder, ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)), ExpectContinueHandler(),
            Application())
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 5000)).wait()
    }

    func send(_ request: String) throws {
        try self.channel.writeInbound(self.channel.allocator.buffer(string: request))
    }

    func written() throws -> String {
        var written = ""
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: buffer) }
        return written
    }

    func respond() throws {
        var head = HTTPResponseHead(version: .http1_1, status: .noContent)
        head.headers.add(name: "content-length", value: "0")
        try self.channel.writeOutbound(HTTPServerResponsePart.head(head))
        try self.channel.writeOutbound(HTTPServerResponsePart.end(nil))
    }

    static let expecting = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"

    @Test("a request that expects 100 Continue gets it as it arrives, before its body")
    func answered() throws {
        try self.send(Self.expecting)
        #expect(try self.written() == "HTTP/1.1 100 Continue\r\n\r\n")
        try self.send("hello")
        try self.respond()
        #expect(try self.written().hasPrefix("HTTP/1.1 204"))
    }

    @Test("a pipelined one, while an earlier response is going out, goes without: it would land inside that response")
    func notInsideAnotherResponse() throws {
        try self.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + Self.expecting)
        #expect(try self.written() == "")
        try self.respond()
        #expect(!(try self.written().contains("100 Continue")))
    }

    @Test("HTTP/1.0 and requests that expect nothing get no 100")
    func onlyWhenAsked() throws {
        try self.send("POST /y HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        #expect(try self.written() == "")
        try self.respond()
        _ = try self.written()
        try self.send("POST /x HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello")
        #expect(try self.written() == "")
    }
}
