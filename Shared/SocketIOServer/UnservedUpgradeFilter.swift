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
/// upgrade handler, and leaves after the first request head, unless it made that request plain:
/// then it stays, and once the request has ended it asks for no more reads. The decoder would
/// only pile up what came next, without a bound, until the response closes the connection (up
/// to a long-poll's 25 s; a review in the forty-fourth session).
final class UnservedUpgradeFilter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = Any

    private enum State {
        case firstRequest
        /// The first request was made plain: reading stops at its end.
        case plainRequest
        case notReading
    }

    private let willUpgrade: (HTTPRequestHead) -> Bool
    private var state = State.firstRequest

    /// `willUpgrade` says whether the upgrade handler switches `head`'s connection.
    init(willUpgrade: @escaping (HTTPRequestHead) -> Bool) {
        self.willUpgrade = willUpgrade
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = self.unwrapInboundIn(data)
        guard case .firstRequest = self.state, case .head(var head) = part else {
            if case .end = part, case .plainRequest = self.state { self.state = .notReading }
            context.fireChannelRead(data)
            return
        }
        if head.headers.contains(name: "upgrade"), !self.willUpgrade(head) {
            Self.makePlain(&head)
            self.state = .plainRequest
            context.fireChannelRead(self.wrapInboundOut(.head(head)))
        } else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func read(context: ChannelHandlerContext) {
        guard case .notReading = self.state else { return context.read() }
    }

    /// Drops the request's `Upgrade` header and asks for the connection to close after the
    /// response (its other `Connection` tokens name only headers of the upgrade).
    static func makePlain(_ head: inout HTTPRequestHead) {
        head.headers.remove(name: "upgrade")
        head.headers.replaceOrAdd(name: "connection", value: "close")
    }
}
