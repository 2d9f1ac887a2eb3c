import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import ThreadedIO

/// A RabbitMQ client over librabbitmq-c, safe to share between tasks.
///
/// It keeps two broker connections: one publishes, the other consumes and acknowledges. Under a
/// memory or disk alarm RabbitMQ stops reading from every connection that publishes; acks that
/// shared it would stop too, and a service could not drain the queues whose growth raised the
/// alarm. Each connection has a dedicated thread that owns it and every call into the library;
/// this type only queues commands to them and awaits their results, so no blocking call ever runs
/// on the cooperative pool or a NIO event loop. Each reconnects by itself with capped exponential
/// backoff and declares the topology again; the consuming one restarts its consumers, the
/// publishing one publishes again whatever was in flight when it was lost.
///
/// As a `Service`, it runs until graceful shutdown, then waits (bounded) for outstanding
/// confirms and closes. Put it before its users in a `ServiceGroup` so that it stops after them.
public final class AMQPConnection: Service, Sendable {
    public let configuration: AMQPConfiguration
    private let publishing: HandleThread<ConnectionCommand>
    private let consuming: HandleThread<ConnectionCommand>
    private let publishingStatus = ConnectedFlag()
    private let consumingStatus = ConnectedFlag()
    private let publishingSocket = SocketBreaker()
    private let consumingSocket = SocketBreaker()
    private let nextConsumerID = Atomic(1)
    /// Where publishes go.
    var publishMailbox: Mailbox<ConnectionCommand> { self.publishing.mailbox }
    /// Where consumers, and their acknowledgements, go.
    var consumeMailbox: Mailbox<ConnectionCommand> { self.consuming.mailbox }

    private let stallWatch: Task<Void, Never>

    public init(configuration: AMQPConfiguration, logger: Logger) {
        self.configuration = configuration
        func thread(_ role: ConnectionDriver.Role, _ status: ConnectedFlag, _ socket: SocketBreaker) -> HandleThread<
            ConnectionCommand
        > {
            HandleThread(name: "amqp-\(role.rawValue)", shutdownCommand: { .shutdown($0) }) {
                ConnectionDriver(
                    role: role, configuration: configuration, mailbox: $0, status: status, socket: socket, logger: logger
                ).run()
            }
        }
        self.publishing = thread(.publishing, self.publishingStatus, self.publishingSocket)
        self.consuming = thread(.consuming, self.consumingStatus, self.consumingSocket)
        let sockets = [("publish", self.publishingSocket), ("consume", self.consumingSocket)]
        self.stallWatch = Task {
            await Self.breakStalledCalls(
                sockets, limit: configuration.stallLimit, name: configuration.connectionName, logger: logger)
        }
    }

    /// True while both broker connections are open and their topology declared.
    public var isConnected: Bool { self.publishingStatus.isConnected && self.consumingStatus.isConnected }

    /// Runs until graceful shutdown (or cancellation), then closes both connections.
    public func run() async throws {
        try? await gracefulShutdown()
        await self.close()
    }

    /// Whether the publishing connection is open (the consuming one is ``isConnected``'s other half).
    public var isPublishingConnected: Bool { self.publishingStatus.isConnected }

    /// Until ``close()``: once a second, a connection whose thread stalled in the library
    /// longer than `limit` has its socket shut down, and reconnects
    /// (``AMQPConfiguration/stalledCallLimit``).
    private static func breakStalledCalls(
        _ sockets: [(role: String, socket: SocketBreaker)], limit: Duration, name: String, logger: Logger
    ) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            for (role, socket) in sockets where socket.breakIfStalled(longerThan: limit) {
                logger.warning(
                    "an AMQP connection stalled in the library; its socket was shut down, and it reconnects",
                    metadata: ["amqp.connection": "\(name)/\(role)", "limit": "\(limit)"])
            }
        }
    }

    /// Waits up to a few seconds for outstanding confirms, closes both connections and ends
    /// their threads. Later operations fail with ``AMQPError/Code/shutdown``.
    ///
    /// A thread blocked in the library with no time limit (a publish the broker does not read,
    /// under a resource alarm or on a dead link) would keep it from ever returning: past the
    /// confirms' grace and a margin, its socket is shut down under it (``SocketBreaker``).
    /// Until the fortieth session a service told to stop during an alarm never exited.
    public func close() async {
        self.stallWatch.cancel()
        let sockets = [self.publishingSocket, self.consumingSocket]
        let breaking = Task {
            try await Task.sleep(for: ConnectionDriver.shutdownGrace + Self.closeMargin)
            for socket in sockets { socket.breakSocket() }
        }
        async let consumingStopped: Void = self.consuming.stop()
        await self.publishing.stop()
        await consumingStopped
        breaking.cancel()
    }

    /// How long past the confirms' grace a closing connection's thread may take to end.
    static let closeMargin: Duration = .seconds(5)

    /// Declares exchanges, queues and bindings, now and after every reconnect. Returns once they
    /// exist on live connections: the consuming one declares the whole topology, the publishing
    /// one all but its exclusive queues, which only the connection that declared them may use.
    public func declare(_ topology: AMQPTopology) async throws {
        try await Self.declare(topology, on: self.consumeMailbox)
        try await Self.declare(topology.withoutExclusiveQueues, on: self.publishMailbox)
    }

    private static func declare(_ topology: AMQPTopology, on mailbox: Mailbox<ConnectionCommand>) async throws {
        let promise = Promise<Void>()
        guard mailbox.send(.declare(topology, promise)) else {
            throw AMQPError(.shutdown, "the AMQP connection is closed")
        }
        try await promise.value()
    }

    /// Publishes a message and returns once the broker confirmed it (persistent messages to
    /// durable queues: written to disk). Throws when the broker nacks it, when it is mandatory and
    /// unroutable, or at shutdown. While the broker is unreachable the call waits; cancel the task
    /// to give up (the message may then still be published).
    public func publish(_ message: AMQPMessage) async throws {
        try self.check(message)
        let promise = Promise<Void>()
        guard self.publishMailbox.send(.publish(PendingPublish(message: Self.identified(message), promise: promise))) else {
            throw AMQPError(.shutdown, "the AMQP connection is closed")
        }
        try await promise.value()
    }

    /// Publishes `messages` in this order and returns once the broker confirmed every one; throws
    /// the first failure (the others may still be published). Cheaper than one ``publish(_:)``
    /// after the other: the whole batch shares the confirm window, and its messages that may travel
    /// together (``AMQPMessage/batched(as:)``) to one destination go as one ``MessageBatch``.
    public func publish(_ messages: [AMQPMessage]) async throws {
        try await self.startPublishing(messages).confirmed()
    }

    /// Queues `messages` for publishing, in this order and after everything queued before, and
    /// returns at once with their confirms to wait for: a caller can go on with its next piece of
    /// work while the broker confirms these, and the order of its publishes is still the order of
    /// its calls. Otherwise as ``publish(_:)-([AMQPMessage])``.
    public func startPublishing(_ messages: [AMQPMessage]) throws -> PendingConfirms {
        for message in messages { try self.check(message) }
        let promises = messages.map { _ in Promise<Void>() }
        let commands = zip(messages, promises).map { message, promise in
            ConnectionCommand.publish(PendingPublish(message: Self.identified(message), promise: promise))
        }
        guard self.publishMailbox.send(contentsOf: commands) else {
            throw AMQPError(.shutdown, "the AMQP connection is closed")
        }
        return PendingConfirms(promises: promises)
    }

    /// Publishes a message without waiting for its confirm (it is still confirmed, and published
    /// again after a reconnect). For messages whose loss is harmless, such as RPC replies.
    /// Throws only for a message over ``AMQPConfiguration/maximumMessageSize``, which the broker
    /// would refuse.
    ///
    /// - Parameter deadline: when the message is worth nothing any more (an RPC reply once its
    ///   caller stopped waiting): one still waiting to be sent then (an outage, a blocked
    ///   connection) is dropped, and one sent carries what is left as its `expiration`.
    public func send(_ message: AMQPMessage, deadline: ContinuousClock.Instant? = nil) throws {
        try self.check(message)
        self.publishMailbox.send(
            .publish(PendingPublish(message: Self.identified(message), promise: nil, deadline: deadline)))
    }

    /// Refuses a message the broker would refuse (``AMQPConfiguration/maximumMessageSize``).
    /// Throws `protocolError` for a message the broker or the library would refuse: a body over
    /// ``AMQPConfiguration/maximumMessageSize``, properties that cannot be encoded
    /// (``AMQPProperties/encodingProblem(frameMax:)``).
    func check(_ message: AMQPMessage) throws {
        guard message.body.count <= self.configuration.maximumMessageSize else {
            throw AMQPError(
                .protocolError,
                "a message of \(message.body.count) bytes is over the broker's limit of \(self.configuration.maximumMessageSize)")
        }
        if let problem = message.properties.encodingProblem(frameMax: self.configuration.frameMax) {
            throw AMQPError(.protocolError, "a message that cannot be sent: \(problem)")
        }
        // AMQP's short strings: longer, the library cannot encode the publish, and the connection
        // it fails on would send it again after every reconnect.
        for (name, value) in [("exchange", message.exchange), ("routing key", message.routingKey)]
        where value.utf8.count > 255 {
            throw AMQPError(.protocolError, "a message that cannot be sent: its \(name) is over 255 bytes")
        }
    }

    /// A returned mandatory message is matched to its publish by message id, so one is given to
    /// a mandatory message that has none.
    private static func identified(_ message: AMQPMessage) -> AMQPMessage {
        guard message.mandatory, message.properties.messageID == nil else { return message }
        var message = message
        message.properties.messageID = UUID.random().lowercasedText
        return message
    }

    /// Starts consuming `queue` with manual acknowledgements (unless `autoAck`) and at most
    /// `prefetch` unacknowledged messages at a time.
    public func consume(queue: String, prefetch: UInt16 = 64, autoAck: Bool = false) -> AMQPConsumer {
        let id = self.nextConsumerID.add(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncStream.makeStream(of: AMQPDelivery.self)
        // Its iterating task cancelled, or every copy of it dropped, without `cancel()` or
        // `close()`: the channel is closed, which gives what it holds back to the queue. Until
        // the forty-eighth session it stayed open, and each delivery was rejected to the queue
        // and handed straight back, as fast as the broker could, until the connection closed.
        let mailbox = self.consumeMailbox
        continuation.onTermination = { termination in
            if case .cancelled = termination { mailbox.send(.closeConsumer(id: id)) }
        }
        let accepted = self.consumeMailbox.send(
            .consume(ConsumerSpec(id: id, queue: queue, prefetch: prefetch, autoAck: autoAck, continuation: continuation)))
        if !accepted { continuation.finish() }
        return AMQPConsumer(id: id, queue: queue, stream: stream, mailbox: self.consumeMailbox)
    }
}
