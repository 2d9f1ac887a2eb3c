import NIOCore
import NIOHTTP1

/// Answers `Expect: 100-continue` with `100 Continue` as the request arrives, so that a client
/// that waits for it before sending its body (curl, for any body over 1 KiB) sends it at once
/// instead of after its own timeout (a second for curl). Hummingbird does not answer it. The
/// final answer comes from the application as usual; one that refuses the request before reading
/// its body still reads it, as for any request.
final class ExpectContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests read whose responses have not ended. A `100 Continue` goes out only when there
    /// is none: written while an earlier response is going out, it would land inside it. A
    /// pipelined request that expects one goes without, and its client sends its body after
    /// its own wait, as before.
    private var unanswered = 0

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data) {
            if self.unanswered == 0, head.version == .http1_1,
                head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" })
            {
                context.writeAndFlush(
                    self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
            }
            self.unanswered += 1
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // An answer to a request the decoder could not read has an end but no request.
        if case .end = self.unwrapOutboundIn(data) { self.unanswered = max(0, self.unanswered - 1) }
        context.write(data, promise: promise)
    }
}
