import NIOCore
import NIOHTTP1

/// Turns a connection's first request that asks to switch to a protocol this server will not
/// switch to (`h2c` from `curl --http2`, a WebSocket at another path, an Engine.IO version or
/// session the engine refuses, a handshake without its key) into a plain request that closes the
/// connection once answered. HTTP lets a server ignore an upgrade it does not serve, so the
/// application answers it as it would without the header: an API response, or the Engine.IO
/// error body.
///
/// NIO's upgrade handler loses the request head of an upgrade that no upgrader takes (it
/// buffers the head only of requests that ask for none), so without this handler the client got
/// no response at all. The request keeps `Connection: close` because NIO's HTTP decoder reads
/// nothing after a request that asked to switch protocols. It sits between the decoder and the
/// upgrade handler, and leaves after the first request head.
final class UnservedUpgradeFilter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let willUpgrade: (HTTPRequestHead) -> Bool

    /// `willUpgrade` says whether the upgrade handler switches `head`'s connection.
    init(willUpgrade: @escaping (HTTPRequestHead) -> Bool) {
        self.willUpgrade = willUpgrade
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = self.unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        if head.headers.contains(name: "upgrade"), !self.willUpgrade(head) {
            Self.makePlain(&head)
            context.fireChannelRead(self.wrapInboundOut(.head(head)))
        } else {
            context.fireChannelRead(data)
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Drops the request's `Upgrade` header and asks for the connection to close after the
    /// response (its other `Connection` tokens name only headers of the upgrade).
    static func makePlain(_ head: inout HTTPRequestHead) {
        head.headers.remove(name: "upgrade")
        head.headers.replaceOrAdd(name: "connection", value: "close")
    }
}
