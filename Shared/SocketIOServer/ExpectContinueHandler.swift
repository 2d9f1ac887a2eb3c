import NIOCore
import NIOHTTP1

/// Answers `Expect: 100-continue` with `100 Continue` as the request arrives, so that a client
/// that waits for it before sending its body (curl, for any body over 1 KiB) sends it at once
/// instead of after its own timeout (a second for curl). Hummingbird does not answer it. The
/// final answer comes from the application as usual; one that refuses the request before reading
/// its body still reads it, as for any request.
final class ExpectContinueHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data), head.version == .http1_1,
            head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" })
        {
            context.writeAndFlush(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }
}
