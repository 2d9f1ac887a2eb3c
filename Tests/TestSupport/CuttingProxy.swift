import NIOCore
import NIOPosix
import Synchronization

/// A TCP proxy on loopback in front of a server, that can lose one answer the way a network
/// cut or a crash after the server acted would: once armed with a marker, the first request
/// that carries it goes through, the server's answer to it is dropped, and both of that
/// connection's sides are closed. Every other byte passes unchanged. It can also cut every
/// connection at once, whatever is under way (``cutEveryConnection()``), or drop every answer
/// from then on and keep the connections open, as a server whose process stopped would
/// (``freezeAnswers()``).
public final class CuttingProxy: Sendable {
    /// The port the proxy listens on, at 127.0.0.1.
    public let port: Int
    private let listener: any Channel
    private let marker = Marker()
    private let clients = Clients()
    private let counter = Marker()
    private let holder = Marker()
    private let frozen = Frozen()

    /// A proxy to `host`:`port`, listening on a free port of 127.0.0.1.
    public init(to host: String, port targetPort: Int) async throws {
        let (marker, clients, counter, holder, frozen) = (self.marker, self.clients, self.counter, self.holder, self.frozen)
        self.listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { client in
                clients.channels.withLock { $0.append(client) }
                return ClientBootstrap(group: client.eventLoop).connect(host: host, port: targetPort).flatMapThrowing { server in
                    let link = Link()
                    try client.pipeline.syncOperations.addHandler(
                        Relay(
                            to: server, link: link,
                            cutAfter: { bytes in
                                counter.count(ifIn: bytes)
                                if holder.take(ifIn: bytes) { return .holdRequest(holder.delay.withLock { $0 }) }
                                return marker.take(ifIn: bytes) ? .answer : nil
                            }))
                    try server.pipeline.syncOperations.addHandler(
                        Relay(to: client, link: link, cutAfter: nil, frozen: frozen))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        self.port = self.listener.localAddress?.port ?? 0
    }

    /// Drops the answer to the next request whose bytes contain `marker` (say `COMMIT`), and
    /// closes its connection.
    public func cutAfterRequest(containing marker: String) {
        self.marker.bytes.withLock { $0 = Array(marker.utf8) }
    }

    /// Closes every connection the proxy carries, both sides, as a network cut would while they
    /// are idle.
    public func cutEveryConnection() {
        for client in self.clients.channels.withLock({ $0 }) { client.close(promise: nil) }
    }

    /// Cuts the client's connection as the next request whose bytes contain `marker` goes out,
    /// and hands that request to the server `delay` later (its answer is lost): the client
    /// learns of the loss while the server has yet to act on it, as when a `COMMIT` is still
    /// under way (say waiting for a standby) when the connection breaks.
    public func holdRequest(containing marker: String, for delay: TimeAmount) {
        self.holder.delay.withLock { $0 = delay }
        self.holder.bytes.withLock { $0 = Array(marker.utf8) }
    }

    /// Drops every answer from the server from now on, and leaves the connections open.
    public func freezeAnswers() {
        self.frozen.value.withLock { $0 = true }
    }

    /// Passes the server's answers again from now on; those dropped meanwhile stay lost, as on
    /// a connection whose peer vanished.
    public func thawAnswers() {
        self.frozen.value.withLock { $0 = false }
    }

    /// Counts the requests that contain `marker` from now on (``counted``).
    public func countRequests(containing marker: String) {
        self.counter.bytes.withLock { $0 = Array(marker.utf8) }
        self.counter.counted.withLock { $0 = 0 }
    }

    /// How many requests contained the marker of ``countRequests(containing:)``.
    public var counted: Int { self.counter.counted.withLock { $0 } }

    /// Whether the cut is still to come.
    public var isArmed: Bool { self.marker.bytes.withLock { $0 != nil } }

    /// Stops listening; the connections it proxies go on.
    public func close() async throws {
        try await self.listener.close()
    }
}

/// The bytes a request must carry to be the one after which the proxy cuts (or, for the
/// proxy's counter, to be counted); nil when unarmed.
private final class Marker: Sendable {
    let bytes = Mutex<[UInt8]?>(nil)
    let counted = Mutex(0)
    /// For the proxy's holder: how long the request is held.
    let delay = Mutex(TimeAmount.zero)

    /// Counts `request` if it carries the marker; the marker stays.
    func count(ifIn request: ByteBuffer) {
        guard let wanted = self.bytes.withLock({ $0 }), Self.contains(Array(request.readableBytesView), wanted) else {
            return
        }
        self.counted.withLock { $0 += 1 }
    }

    /// Whether `request` carries the marker; if so the proxy is disarmed.
    func take(ifIn request: ByteBuffer) -> Bool {
        self.bytes.withLock { armed in
            guard let wanted = armed, Self.contains(Array(request.readableBytesView), wanted) else { return false }
            armed = nil
            return true
        }
    }

    private static func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, bytes.count >= needle.count else { return false }
        return (0...(bytes.count - needle.count)).contains { bytes[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

/// Whether the server's answers are dropped.
private final class Frozen: Sendable {
    let value = Mutex(false)
}

/// The client side of every connection the proxy opened.
private final class Clients: Sendable {
    let channels = Mutex<[any Channel]>([])
}

/// The two connections of one proxied client, on one event loop: whether its next answer is
/// to be dropped.
private final class Link {
    var cutting = false
    /// The client's side was closed with a request held for the server: the server's side
    /// stays open until that request's answer comes.
    var holding = false
}

/// What the proxy does about a request from the client.
private enum Cut {
    /// Passes it on, and drops its answer with the connection.
    case answer
    /// Closes the client's side now, and passes it on after the delay (its answer is dropped).
    case holdRequest(TimeAmount)
}

/// Passes what one side of a link reads to the other.
private final class Relay: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let peer: any Channel
    let link: Link
    /// On the client's side: what to do about a request (nil: pass it on).
    let cutAfter: ((ByteBuffer) -> Cut?)?
    /// On the server's side: whether its answers are dropped.
    let frozen: Frozen?

    init(to peer: any Channel, link: Link, cutAfter: ((ByteBuffer) -> Cut?)?, frozen: Frozen? = nil) {
        self.peer = peer
        self.link = link
        self.cutAfter = cutAfter
        self.frozen = frozen
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = self.unwrapInboundIn(data)
        if self.frozen?.value.withLock({ $0 }) == true { return }
        if let cutAfter {
            switch cutAfter(bytes) {
            case nil:
                break
            case .answer:
                self.link.cutting = true
            case .holdRequest(let delay):
                self.link.cutting = true
                self.link.holding = true
                context.close(promise: nil)
                let server = self.peer
                context.eventLoop.scheduleTask(in: delay) { server.writeAndFlush(bytes, promise: nil) }
                // Closed in any case a while after, should no answer pass (one frozen, say).
                context.eventLoop.scheduleTask(in: delay + .seconds(5)) { server.close(promise: nil) }
                return
            }
        } else if self.link.cutting {
            // The answer is lost with the connection.
            context.close(promise: nil)
            self.peer.close(promise: nil)
            return
        }
        self.peer.writeAndFlush(bytes, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The client's side closed with a request held: the server's side waits for its answer.
        if !(self.cutAfter != nil && self.link.holding) { self.peer.close(promise: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
