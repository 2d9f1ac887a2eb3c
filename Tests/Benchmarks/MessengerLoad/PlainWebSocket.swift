import NIOCore
import NIOPosix
import NIOWebSocket

/// The load tool's WebSocket connections (the load clients', the storm's and the idle
/// scenario's), on plain NIO channels: each text frame is handled on the event loop as it
/// arrives, with no task or async sequence per frame, so that the tool takes little of the CPU
/// and memory of the machine the gateway is measured on.
///
/// The upgrade is written and read by hand: the server sends its first frame (Engine.IO's open
/// packet) right behind its `101` response, often in the same read, and every byte after the
/// response goes to the frame decoder.
enum PlainWebSocket {
    struct NotUpgraded: Error {}
    /// `IP_BIND_ADDRESS_NO_PORT` (linux/in.h), which Glibc's module does not export.
    private static let bindAddressNoPort = NIOBSDSocket.Option(rawValue: 24)
    struct InvalidURL: Error { var url: String }

    /// Where the sockets connect: `ws://host:port/path?query`.
    struct Endpoint: Sendable {
        var host: String
        var port: Int
        var path: String

        init?(url: String) {
            guard url.hasPrefix("ws://") else { return nil }
            let rest = url.dropFirst("ws://".count)
            let authority = rest.prefix { $0 != "/" }
            let parts = authority.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { return nil }
            self.host = String(parts[0])
            self.port = port
            self.path = String(rest.dropFirst(authority.count))
        }
    }

    /// Connects (from `source`, a local IP address, when given) and upgrades to a WebSocket.
    /// Every text frame then goes to `onText`, and what it returns is sent back; `onClose` runs
    /// once the connection is gone.
    static func connect(
        to endpoint: Endpoint, from source: String? = nil, onText: @escaping @Sendable (String) -> String?,
        onClose: @escaping @Sendable () -> Void
    ) async throws -> any Channel {
        let request =
            "GET \(endpoint.path) HTTP/1.1\r\nHost: \(endpoint.host):\(endpoint.port)\r\nUpgrade: websocket\r\n"
            + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        if let source {
            // The port is chosen at connect, for the whole address pair, instead of at bind among
            // every port of the address (a scan that grows with each socket).
            bootstrap = bootstrap.channelOption(.ipOption(Self.bindAddressNoPort), value: 1)
                .bind(to: try SocketAddress(ipAddress: source, port: 0))
        }
        let (channel, upgraded) = try await bootstrap.connect(host: endpoint.host, port: endpoint.port) { channel in
            channel.eventLoop.makeCompletedFuture {
                let upgraded = channel.eventLoop.makePromise(of: Void.self)
                try channel.pipeline.syncOperations.addHandler(
                    UpgradeHandler(
                        request: request, frames: TextFrameHandler(onText: onText, onClose: onClose), upgraded: upgraded))
                return (channel, upgraded.futureResult)
            }
        }
        do {
            try await upgraded.get()
        } catch {
            channel.close(promise: nil)
            throw error
        }
        return channel
    }

    /// A client's text frame (masked, as every client frame must be).
    static func text(_ text: String, allocator: ByteBufferAllocator) -> WebSocketFrame {
        WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: allocator.buffer(string: text))
    }

    /// Sends a close frame ("going away") and closes the connection.
    static func close(_ channel: any Channel) {
        var code = channel.allocator.buffer(capacity: 2)
        code.write(webSocketErrorCode: .goingAway)
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: code)
        channel.writeAndFlush(frame).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Sends the upgrade request, reads the response, then puts the WebSocket codec and the
    /// frame handler in its place and hands them the bytes that came after the response.
    private final class UpgradeHandler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let request: String
        let frames: TextFrameHandler
        let upgraded: EventLoopPromise<Void>
        private var received: ByteBuffer?

        init(request: String, frames: TextFrameHandler, upgraded: EventLoopPromise<Void>) {
            self.request = request
            self.frames = frames
            self.upgraded = upgraded
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            // A no-op once the upgrade succeeded.
            self.upgraded.fail(NotUpgraded())
        }

        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(Self.wrapOutboundOut(context.channel.allocator.buffer(string: self.request)), promise: nil)
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.upgraded.fail(NotUpgraded())
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = Self.unwrapInboundIn(data)
            if self.received == nil {
                self.received = bytes
            } else {
                self.received!.writeBuffer(&bytes)
            }
            guard var received = self.received,
                let end = received.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound
            else { return }
            let head = received.readString(length: end - received.readerIndex) ?? ""
            guard head.hasPrefix("HTTP/1.1 101") else {
                self.upgraded.fail(NotUpgraded())
                context.close(promise: nil)
                return
            }
            do {
                try context.pipeline.syncOperations.addHandlers(
                    [ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 24)), WebSocketFrameEncoder(), self.frames],
                    position: .after(self))
            } catch {
                self.upgraded.fail(error)
                context.close(promise: nil)
                return
            }
            self.upgraded.succeed()
            if received.readableBytes > 0 { context.fireChannelRead(Self.wrapInboundOut(received)) }
            self.received = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    private final class TextFrameHandler: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame

        let onText: @Sendable (String) -> String?
        let onClose: @Sendable () -> Void

        init(onText: @escaping @Sendable (String) -> String?, onClose: @escaping @Sendable () -> Void) {
            self.onText = onText
            self.onClose = onClose
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = Self.unwrapInboundIn(data)
            switch frame.opcode {
            case .text:
                if let reply = self.onText(String(buffer: frame.unmaskedData)) {
                    context.writeAndFlush(
                        Self.wrapOutboundOut(PlainWebSocket.text(reply, allocator: context.channel.allocator)), promise: nil)
                }
            case .ping:
                let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
                context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
            case .connectionClose:
                context.close(promise: nil)
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.onClose()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
