import NIOCore
import NIOHTTP1

/// Answers a connection's first request that NIO's HTTP decoder cannot parse: `431 Request
/// Header Fields Too Large` for a request line or header section past the decoder's limits,
/// `400 Bad Request` for any other parse error, with `Connection: close`, and then closes the
/// connection.
///
/// The first request goes through NIO's upgrade handler before the application sees the
/// connection, and the pipeline's own error handling is off (the application answers errors),
/// so such a request got no answer at all and its connection stayed open: a URL of 90,000
/// characters (`GET /api/users?ids=` with 5,000 ids) or a 100 KB header hung until the client
/// gave up. It sits right after the decoder, and leaves after the first request head (later
/// requests are the application's).
final class UnparsableRequestResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
        if case .head = self.unwrapInboundIn(data) {
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !self.answered else { return }
        self.answered = true
        let status: HTTPResponseStatus = parseError == .headerOverflow ? .requestHeaderFieldsTooLarge : .badRequest
        let head = HTTPResponseHead(
            version: .http1_1, status: status, headers: ["connection": "close", "content-length": "0"])
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
