import CRabbitMQ
import Foundation
import Logging
import MessengerContracts
import ThreadedIO

/// The librabbitmq-c connection and everything that touches it.
///
/// Created on, and used only from, the connection's own thread (see ``AMQPConnection``), so it
/// needs no locks. Channel 1 publishes in confirm mode (on a publishing connection), channel 2
/// declares topology, and each consumer has a channel of its own from 3 on (on a consuming one).
final class ConnectionDriver {
    /// What a connection is for. RabbitMQ blocks a connection that publishes under a resource
    /// alarm, so consumers and their acknowledgements go on a connection that never publishes.
    enum Role: String {
        case publishing = "publish"
        case consuming = "consume"
    }

    private static let publishChannel: amqp_channel_t = 1
    /// The codes of a channel close that refuse what the channel asked: 403 ACCESS_REFUSED,
    /// 404 NOT_FOUND, 406 PRECONDITION_FAILED.
    private static let refusals: Set<UInt16> = [403, 404, 406]
    private static let adminChannel: amqp_channel_t = 2
    private static let firstConsumerChannel: amqp_channel_t = 3
    /// How long a closing connection waits for outstanding confirms.
    static let shutdownGrace: Duration = .seconds(5)
    /// The longest the thread sleeps without calling into the library (heartbeats are only
    /// serviced from inside library calls).
    private static let idleWakeMilliseconds: Int32 = 250

    private let role: Role
    /// The name the broker shows: the configured one and the role (`messaging-1a2b/publish`).
    private let name: String
    private let configuration: AMQPConfiguration
    private let mailbox: Mailbox<ConnectionCommand>
    private let status: ConnectedFlag
    private let socket: SocketBreaker
    private let logger: Logger

    private var connection: amqp_connection_state_t?
    private var isOpen = false
    /// The broker said it stops reading this connection (`connection.blocked`: a memory or disk
    /// alarm), until `connection.unblocked`. Nothing is written meanwhile: written, a message
    /// waited in the socket and ran once the alarm cleared, minutes after its caller had been
    /// answered `unavailable` (an RPC request: a refresh rotated for a client whose retry then
    /// read as a reuse; the forty-fourth session's review). Messages whose deadline passes
    /// meanwhile are dropped from the queue, as during an outage.
    private var publishingBlocked = false
    private var generation: UInt64 = 0
    /// The life of the current connection, which its deliveries hold (``AMQPDelivery/canBeSettled``).
    private var life = ConnectionLife()
    private var topology = AMQPTopology()
    private var pendingDeclares: [(AMQPTopology, Promise<Void>)] = []
    private var consumers: [Int: ConsumerSpec] = [:]
    private var consumerChannels: [Int: amqp_channel_t] = [:]
    private var channelConsumers: [amqp_channel_t: Int] = [:]
    private var cancelling: Set<Int> = []
    /// Consumers whose sequence ended with their channel still open
    /// (``ConnectionCommand/holdConsumer(id:)``): what the broker hands them now stays unsettled
    /// until the channel closes and gives it back in place.
    private var held: Set<Int> = []
    /// Consumer channels closed on this connection (``ConnectionCommand/closeConsumer(id:)``):
    /// settlements of their deliveries, and deliveries the library still holds for them, are
    /// dropped (the broker put them back in the queue).
    private var closedChannels: Set<amqp_channel_t> = []
    /// The acknowledgements of each consumer channel on this connection.
    private var acknowledgements: [amqp_channel_t: AcknowledgementRuns] = [:]
    private var nextChannel = ConnectionDriver.firstConsumerChannel
    private var window: ConfirmWindow<PendingPublish>
    /// Commands drained from the mailbox that a lost connection kept from being handled; the
    /// next connection handles them first, in order.
    private var carriedOver: [ConnectionCommand] = []
    private var stopRequest = StopRequest()
    private var shutdownDeadline: ContinuousClock.Instant?
    /// Closing gave up on unconfirmed messages: the broker is not reading (a resource alarm, a
    /// dead link), so no close handshake is attempted either (it would wait 30 s for nothing).
    private var abandoned = false
    /// Reused by every publish (the library copies what it needs into its frame buffer).
    private let publishArena = CArena()

    init(
        role: Role, configuration: AMQPConfiguration, mailbox: Mailbox<ConnectionCommand>, status: ConnectedFlag,
        socket: SocketBreaker, logger: Logger
    ) {
        self.role = role
        self.socket = socket
        self.name = "\(configuration.connectionName)/\(role.rawValue)"
        self.configuration = configuration
        self.mailbox = mailbox
        self.status = status
        self.window = ConfirmWindow(limit: configuration.confirmWindow)
        var logger = logger
        logger[metadataKey: "amqp.connection"] = .string(self.name)
        self.logger = logger
    }

    /// Connects, serves and reconnects until shutdown is asked for.
    func run() {
        ReconnectLoop.run(
            backoff: Backoff(
                initial: self.configuration.reconnectInitialDelay, maximum: self.configuration.reconnectMaximumDelay),
            isStopping: { self.stopRequest.isAsked },
            connectAndServe: { connected in
                self.socket.working(since: .now)
                try self.connect()
                connected()
                try self.serve()
            },
            lost: { error, failures in self.connectionLost(error, failures: failures) },
            wait: { self.waitWhileDisconnected($0) })
        self.finish()
    }

    // MARK: Connecting

    private func connect() throws {
        guard let connection = amqp_new_connection() else { throw AMQPError(.connection, "out of memory") }
        self.connection = connection
        guard let socket = amqp_tcp_socket_new(connection) else { throw AMQPError(.connection, "cannot create a socket") }

        let arena = CArena()
        var timeout = timeval(self.configuration.connectTimeout)
        try self.check(
            amqp_socket_open_noblock(socket, arena.cString(self.configuration.host), Int32(self.configuration.port), &timeout),
            "connect to \(self.configuration.host):\(self.configuration.port)")
        self.socket.set(amqp_get_sockfd(connection))
        var rpcTimeout = timeval(.seconds(30))
        _ = amqp_set_rpc_timeout(connection, &rpcTimeout)

        var properties = arena.table([
            "connection_name": .string(self.name),
            // librabbitmq-c 0.11 advertises only authentication_failure_close and
            // exchange_exchange_bindings, and merges this table into its own defaults (nested
            // tables too, amqp_merge_capabilities). Without consumer_cancel_notify the broker
            // cancels a consumer whose queue is deleted silently; with it, basic.cancel arrives
            // and the connection starts over, declaring its topology and its consumers again.
            "capabilities": .table(["consumer_cancel_notify": .bool(true), "connection.blocked": .bool(true)]),
        ])
        try self.check(
            messenger_amqp_login_plain(
                connection, arena.cString(self.configuration.virtualHost), 0, Int32(self.configuration.frameMax),
                Int32(self.configuration.heartbeat), &properties, arena.cString(self.configuration.user),
                arena.cString(self.configuration.password)),
            "login")

        if self.role == .publishing {
            try self.openChannel(Self.publishChannel)
            amqp_confirm_select(connection, Self.publishChannel)
            try self.checkRPC("confirm.select")
        }
        try self.openChannel(Self.adminChannel)
        try self.declareNow(self.topology)

        self.generation += 1
        self.life = ConnectionLife()
        self.nextChannel = Self.firstConsumerChannel
        self.acknowledgements.removeAll()
        self.closedChannels.removeAll()
        self.publishingBlocked = false
        self.isOpen = true
        for id in self.consumers.keys.sorted() {
            try self.startConsumer(id)
        }
        let declares = self.pendingDeclares
        self.pendingDeclares = []
        for (index, (topology, promise)) in declares.enumerated() {
            do {
                try self.declareNew(topology, promise)
            } catch {
                // The ones after it wait for the next connection (this one kept itself if it
                // should be tried again).
                self.pendingDeclares += declares[(index + 1)...]
                throw error
            }
        }
        self.status.set(connected: true)
        self.logger.info(
            "AMQP connected",
            metadata: ["host": "\(self.configuration.host):\(self.configuration.port)", "generation": "\(self.generation)"])
    }

    private func openChannel(_ channel: amqp_channel_t) throws {
        amqp_channel_open(self.connection, channel)
        try self.checkRPC("channel.open \(channel)")
    }

    private func declareNow(_ topology: AMQPTopology) throws {
        let arena = CArena()
        for exchange in topology.exchanges {
            amqp_exchange_declare(
                self.connection, Self.adminChannel, arena.bytes(exchange.name), arena.bytes(exchange.kind.rawValue), 0,
                exchange.durable ? 1 : 0, 0, 0, amqp_empty_table)
            try self.checkRPC("exchange.declare \(exchange.name)")
        }
        for queue in topology.queues {
            amqp_queue_declare(
                self.connection, Self.adminChannel, arena.bytes(queue.name), 0, queue.durable ? 1 : 0,
                queue.exclusive ? 1 : 0, queue.autoDelete ? 1 : 0, arena.table(queue.arguments))
            try self.checkRPC("queue.declare \(queue.name)")
        }
        for binding in topology.bindings {
            amqp_queue_bind(
                self.connection, Self.adminChannel, arena.bytes(binding.queue), arena.bytes(binding.exchange),
                arena.bytes(binding.routingKey), amqp_empty_table)
            try self.checkRPC("queue.bind \(binding.queue) -> \(binding.exchange)")
        }
    }

    /// Declares a topology asked for on a live connection: kept for reconnects when it works,
    /// reported to the caller when the broker refuses it.
    private func declareNew(_ topology: AMQPTopology, _ promise: Promise<Void>) throws {
        do {
            try self.declareNow(topology)
            self.topology = self.topology.merged(with: topology)
            promise.succeed(())
        } catch let error as AMQPError where error.code == .protocolError {
            promise.fail(error)
            throw error
        } catch {
            self.pendingDeclares.append((topology, promise))
            throw error
        }
    }

    private func startConsumer(_ id: Int) throws {
        guard let spec = self.consumers[id] else { return }
        let channel = self.nextChannel
        self.nextChannel += 1
        let arena = CArena()
        do {
            try self.openChannel(channel)
            amqp_basic_qos(self.connection, channel, 0, spec.prefetch, 0)
            try self.checkRPC("basic.qos")
            amqp_basic_consume(
                self.connection, channel, arena.bytes(spec.queue), arena.bytes("consumer-\(id)"), 0, spec.autoAck ? 1 : 0,
                0, amqp_empty_table)
            try self.checkRPC("basic.consume \(spec.queue)")
        } catch let error as AMQPError where error.code == .protocolError {
            // The broker refused this consumer (no such queue, for example): its owner hears of it
            // when the sequence ends, instead of the connection retrying forever.
            self.logger.error("consumer refused", metadata: ["queue": "\(spec.queue)", "error": "\(LoggedError(error))"])
            self.consumers.removeValue(forKey: id)?.continuation.finish()
            throw error
        }
        self.consumerChannels[id] = channel
        self.channelConsumers[channel] = id
    }

    // MARK: Serving

    /// Runs commands and frames until shutdown has drained the confirm window.
    private func serve() throws {
        while true {
            var publishes: [PendingPublish] = []
            let commands = self.carriedOver + self.mailbox.drain()
            self.carriedOver = []
            for (index, command) in commands.enumerated() {
                if case .publish(let pending) = command {
                    assert(self.role == .publishing, "a publish reached the consuming connection")
                    publishes.append(pending)
                    continue
                }
                do {
                    try self.handle(command)
                } catch {
                    // The connection failed under this command. The publishes gathered so far go
                    // to the window (published on the next connection), the commands after this
                    // one wait for it: none of their callers is left waiting for ever.
                    for pending in publishes { self.window.enqueue(pending) }
                    self.carriedOver = Array(commands[(index + 1)...])
                    throw error
                }
            }
            // Messages of this round that may travel together and share a destination go as one
            // (``MessageBatch``), once those whose deadline passed are dropped: a batch is sent
            // while any of its members' callers waits, and the first round after an outage
            // gathers the outage's requests, whose callers gave up, with fresh ones (the
            // forty-seventh session's review).
            if self.configuration.sendsBatches {
                let now = ContinuousClock.now
                var fresh: [PendingPublish] = []
                fresh.reserveCapacity(publishes.count)
                for pending in publishes {
                    if pending.isStale(at: now) {
                        pending.fail(AMQPError(.timeout, "the message's deadline passed before it could be sent"))
                    } else {
                        fresh.append(pending)
                    }
                }
                publishes = MessageBatch.coalesce(fresh)
            }
            for pending in publishes { self.window.enqueue(pending) }
            try self.sendAcknowledgements()
            if self.publishingBlocked {
                self.dropStaleWaiting()
            } else {
                // Frames first: a heartbeat deadline passed is found here, where the read has a
                // time limit, and not in `amqp_basic_publish`, whose own check of it waits for
                // the broker without one.
                try self.readFrames()
                try self.publishWaiting()
            }
            try self.readFrames()
            self.endCancelledConsumers()
            if self.stopRequest.isAsked {
                if self.window.isIdle { return }
                if let deadline = self.shutdownDeadline, ContinuousClock.now >= deadline {
                    self.logger.warning(
                        "closing with unconfirmed messages",
                        metadata: ["unconfirmed": "\(self.window.inFlight.count + self.window.waiting.count)"])
                    self.abandoned = true
                    return
                }
            }
            // Confirms read just now may have made room for messages that wait: publish them
            // at once, not when the idle wake comes (up to 250 ms later).
            if self.window.hasRoom, !self.window.waiting.isEmpty, !self.publishingBlocked { continue }
            self.socket.working(since: nil)
            self.mailbox.wait(socket: amqp_get_sockfd(self.connection), timeoutMilliseconds: Self.idleWakeMilliseconds)
            self.socket.working(since: .now)
        }
    }

    private func handle(_ command: ConnectionCommand) throws {
        switch command {
        case .publish(let pending):
            self.window.enqueue(pending)
        case .declare(let topology, let promise):
            if self.isOpen {
                try self.declareNew(topology, promise)
            } else {
                self.pendingDeclares.append((topology, promise))
            }
        case .consume(let spec):
            self.consumers[spec.id] = spec
            if self.isOpen { try self.startConsumer(spec.id) }
        case .cancelConsumer(let id):
            if self.isOpen, let channel = self.consumerChannels[id] {
                let arena = CArena()
                amqp_basic_cancel(self.connection, channel, arena.bytes("consumer-\(id)"))
                do {
                    try self.checkRPC("basic.cancel")
                } catch {
                    // The connection is going: its deliveries go back to the queue, and the
                    // consumer ends here rather than being started again on the next one.
                    self.consumers.removeValue(forKey: id)?.continuation.finish()
                    throw error
                }
                // Deliveries that came before cancel-ok are still queued in the library; the
                // stream ends once they have been handed out (see endCancelledConsumers).
                self.cancelling.insert(id)
            } else {
                self.consumers.removeValue(forKey: id)?.continuation.finish()
            }
        case .holdConsumer(let id):
            self.consumers.removeValue(forKey: id)?.continuation.finish()
            if self.isOpen, self.consumerChannels[id] != nil { self.held.insert(id) }
        case .closeConsumer(let id):
            try self.closeConsumer(id)
        case .settle(let settlement, let tag, let channel, let generation):
            // A delivery from an earlier connection, or from a closed channel, cannot be
            // settled: the broker requeued it.
            guard self.isOpen, generation == self.generation, !self.closedChannels.contains(channel) else { return }
            let status: Int32
            switch settlement {
            case .ack:
                // Sent after this round of commands, with the acks that came with it.
                self.acknowledgements[channel, default: AcknowledgementRuns()].ack(tag)
                return
            case .nack(let requeue): status = amqp_basic_nack(self.connection, channel, tag, 0, requeue ? 1 : 0)
            case .reject(let requeue): status = amqp_basic_reject(self.connection, channel, tag, requeue ? 1 : 0)
            }
            try self.check(status, "settle")
            self.acknowledgements[channel, default: AcknowledgementRuns()].settledAlone(tag)
        case .shutdown(let promise):
            self.stopRequest.ask(promise)
            self.shutdownDeadline = ContinuousClock.now + Self.shutdownGrace
        }
    }

    /// Sends the acks of this round: one `multiple` ack per channel where they form a run.
    private func sendAcknowledgements() throws {
        guard self.isOpen else { return }
        for channel in self.acknowledgements.keys where self.acknowledgements[channel]?.hasWaiting == true {
            guard let frames = self.acknowledgements[channel]?.flush() else { continue }
            if let through = frames.multiple {
                try self.check(amqp_basic_ack(self.connection, channel, through, 1), "settle")
            }
            for tag in frames.single {
                try self.check(amqp_basic_ack(self.connection, channel, tag, 0), "settle")
            }
        }
    }

    /// Fails the waiting messages whose deadline has passed (an RPC request whose caller gave
    /// up), where they wait in the queue.
    private func dropStaleWaiting() {
        let now = ContinuousClock.now
        self.window.dropWaiting(where: { $0.isStale(at: now) }) {
            $0.fail(AMQPError(.timeout, "the message's deadline passed before it could be sent"))
        }
    }

    private func publishWaiting() throws {
        let now = ContinuousClock.now
        while let (_, pending) = self.window.next(
            dropping: { $0.isStale(at: now) },
            dropped: { $0.fail(AMQPError(.timeout, "the message's deadline passed before it could be sent")) })
        {
            var message = pending.message
            if let deadline = pending.deadline {
                // What is left of the caller's wait, not the whole of it again after an outage,
                // and for a request (it names where its reply goes) when that was: the server
                // counts the time the request waits in its queue.
                message.properties.expiration = String(max(1, Backoff.milliseconds(deadline - now)))
                if message.properties.replyTo != nil {
                    message.properties.headers[AMQPProperties.sentAtHeader] = .int(AMQPProperties.wallClockMilliseconds())
                }
            }
            let arena = self.publishArena
            arena.reset()
            var properties = arena.properties(message.properties)
            let status = message.body.withUnsafeBytes { body in
                amqp_basic_publish(
                    self.connection, Self.publishChannel, arena.bytes(message.exchange), arena.bytes(message.routingKey),
                    message.mandatory ? 1 : 0, 0, &properties,
                    amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
            }
            try self.check(status, "basic.publish")
            self.socket.working(since: .now)  // a stall is one call that does not return
        }
    }

    /// Closes a consumer's channel, after sending the acks it was given so far: the broker puts
    /// the deliveries it has not had settled back in the queue, in their places, before it
    /// hands anything to another consumer. The consumer's sequence ends.
    private func closeConsumer(_ id: Int) throws {
        self.held.remove(id)
        guard self.isOpen, let channel = self.consumerChannels[id] else {
            self.consumers.removeValue(forKey: id)?.continuation.finish()
            return
        }
        try self.sendAcknowledgements()
        self.closedChannels.insert(channel)
        self.consumerChannels.removeValue(forKey: id)
        self.channelConsumers.removeValue(forKey: channel)
        self.acknowledgements.removeValue(forKey: channel)
        self.consumers.removeValue(forKey: id)?.continuation.finish()
        // Its reply is what it returns: `amqp_get_rpc_reply` still held the last generated call's
        // (librabbitmq 0.11's `amqp_simple_rpc` does not set it), so a failed close went unseen
        // until the fiftieth session's review of the C layers.
        try self.check(amqp_channel_close(self.connection, channel, AMQP_REPLY_SUCCESS), "channel.close \(channel)")
    }

    /// Handles every frame that can be had without blocking.
    private func readFrames() throws {
        var frame = amqp_frame_t()
        while true {
            var immediately = timeval(tv_sec: 0, tv_usec: 0)
            let status = amqp_simple_wait_frame_noblock(self.connection, &frame, &immediately)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            try self.check(status, "read frame")
            try self.handle(frame)
            amqp_maybe_release_buffers(self.connection)
            self.socket.working(since: .now)
        }
    }

    private func handle(_ frame: amqp_frame_t) throws {
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else {
            self.logger.debug("ignoring a content frame outside a message", metadata: ["channel": "\(frame.channel)"])
            return
        }
        let method = frame.payload.method
        switch method.id {
        case AMQPMethod.basicAck:
            let ack = method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
            for entry in self.window.settle(tag: ack.delivery_tag, multiple: ack.multiple != 0) {
                if entry.returned {
                    entry.pending.fail(
                        AMQPError(
                            .unroutable,
                            "no queue is bound for \(entry.pending.message.exchange)/\(entry.pending.message.routingKey)"))
                } else {
                    entry.pending.succeed()
                }
            }
        case AMQPMethod.basicNack:
            let nack = method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
            for entry in self.window.settle(tag: nack.delivery_tag, multiple: nack.multiple != 0) {
                entry.pending.fail(AMQPError(.nacked, "the broker refused the message"))
            }
        case AMQPMethod.basicReturn:
            let message = try self.readMessage(on: frame.channel)
            if let id = message.properties.messageID {
                self.window.markReturned { $0.message.properties.messageID == id }
            }
        case AMQPMethod.basicDeliver:
            let deliver = method.decoded.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let tag = deliver.delivery_tag
            let redelivered = deliver.redelivered != 0
            let exchange = deliver.exchange.string
            let routingKey = deliver.routing_key.string
            let message = try self.readMessage(on: frame.channel)
            let delivery = AMQPDelivery(
                body: message.body, properties: message.properties, exchange: exchange, routingKey: routingKey,
                redelivered: redelivered, tag: tag, channel: frame.channel, generation: self.generation,
                settlement: SettlementHandle(mailbox: self.mailbox, connection: self.life))
            // A delivery that reached the library before its channel was closed: the broker has
            // it back in the queue.
            if self.closedChannels.contains(frame.channel) { return }
            // A held consumer leaves it unsettled: its channel's close gives it back in place.
            if let id = self.channelConsumers[frame.channel], self.held.contains(id) { return }
            guard let id = self.channelConsumers[frame.channel], let spec = self.consumers[id] else {
                // Nobody listens any more: give it back to the queue (a consumer without acks
                // has nothing to give back: the broker would close the channel for the tag).
                if let id = self.channelConsumers[frame.channel], self.consumers[id]?.autoAck == true { return }
                try self.check(amqp_basic_reject(self.connection, frame.channel, tag, 1), "reject")
                self.acknowledgements[frame.channel, default: AcknowledgementRuns()].settledAlone(tag)
                return
            }
            if case .terminated = spec.continuation.yield(delivery) {
                // Its sequence was cancelled by its reader (``AMQPConnection/consume(queue:prefetch:autoAck:)``
                // sends the close too): closing the channel gives this delivery and the others
                // unsettled back in place, where a reject had the broker hand it straight back.
                try self.closeConsumer(id)
            }
        case AMQPMethod.basicCancel:
            throw AMQPError(.protocolError, "the broker cancelled a consumer on channel \(frame.channel)")
        case AMQPMethod.channelClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let reason = "\(close.reply_code) \(close.reply_text.string)"
            // On the publishing channel, with a code for something a publish asked (access
            // refused, not found, precondition failed), the broker refused a message in flight:
            // the next connection finds which (``ConfirmWindow/refusedByBroker()``). Any other
            // close is taken as a lost connection.
            if frame.channel == Self.publishChannel, Self.refusals.contains(close.reply_code),
                let culprit = self.window.refusedByBroker()
            {
                self.logger.error(
                    "the broker refused a message",
                    metadata: [
                        "exchange": "\(culprit.message.exchange)", "routing_key": "\(culprit.message.routingKey)",
                        "reason": "\(reason)",
                    ])
                culprit.fail(AMQPError(.protocolError, "the broker refused the message: \(reason)"))
            }
            throw AMQPError(.protocolError, "channel \(frame.channel) closed by the broker: \(reason)")
        case AMQPMethod.connectionClose:
            let close = method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            throw AMQPError(.connection, "connection closed by the broker: \(close.reply_code) \(close.reply_text.string)")
        case AMQPMethod.connectionBlocked:
            self.publishingBlocked = true
            self.logger.warning("the broker blocked publishing (resource alarm)")
        case AMQPMethod.connectionUnblocked:
            self.publishingBlocked = false
            self.logger.info("the broker unblocked publishing")
        default:
            self.logger.debug("ignoring method", metadata: ["method": "\(method.id)", "channel": "\(frame.channel)"])
        }
    }

    private struct ReceivedMessage {
        var properties: AMQPProperties
        var body: Data
    }

    /// Reads the header and body frames that follow a `basic.deliver` or `basic.return`.
    private func readMessage(on channel: amqp_channel_t) throws -> ReceivedMessage {
        var message = amqp_message_t()
        try self.check(amqp_read_message(self.connection, channel, &message, 0), "read message")
        defer { amqp_destroy_message(&message) }
        return ReceivedMessage(properties: AMQPProperties(message.properties), body: message.body.data)
    }

    private func endCancelledConsumers() {
        for id in self.cancelling {
            if let channel = self.consumerChannels.removeValue(forKey: id) {
                self.channelConsumers.removeValue(forKey: channel)
            }
            self.consumers.removeValue(forKey: id)?.continuation.finish()
        }
        self.cancelling.removeAll()
    }

    // MARK: Losing the connection, shutting down

    private func connectionLost(_ error: any Error, failures: Int) {
        let wasOpen = self.isOpen
        self.life.end()
        self.status.set(connected: false)
        self.isOpen = false
        if let connection = self.connection {
            self.socket.set(nil)
            amqp_destroy_connection(connection)
            self.connection = nil
        }
        self.window.connectionLost()
        self.consumerChannels.removeAll()
        self.channelConsumers.removeAll()
        self.held.removeAll()
        self.endCancelledConsumers()
        if wasOpen || failures == 1 {
            self.logger.warning("AMQP connection lost, reconnecting", metadata: ["error": "\(LoggedError(error))"])
        } else if ReconnectLoop.isWorthAWarning(failuresInARow: failures) {
            self.logger.warning(
                "AMQP broker still unreachable", metadata: ["error": "\(LoggedError(error))", "attempt": "\(failures)"])
        } else {
            self.logger.debug("AMQP reconnect failed", metadata: ["error": "\(LoggedError(error))", "attempt": "\(failures)"])
        }
    }

    private func waitWhileDisconnected(_ delay: Duration) {
        self.socket.working(since: nil)
        // Nothing here talks to the broker while the connection is closed: publishes wait in the
        // window, declares and consumers for the next connection.
        let carried = self.carriedOver
        self.carriedOver = []
        for command in carried { try? self.handle(command) }
        let deadline = ContinuousClock.now + delay
        while !self.stopRequest.isAsked {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return }
            self.mailbox.wait(timeoutMilliseconds: Int32(max(1, Backoff.milliseconds(remaining))))
            for command in self.mailbox.drain() {
                // Nothing here talks to the broker while the connection is closed.
                try? self.handle(command)
            }
            // A call made during the outage does not hold its request until the broker is back.
            self.dropStaleWaiting()
        }
    }

    private func finish() {
        if let connection = self.connection {
            if self.isOpen, !self.abandoned {
                _ = amqp_connection_close(connection, AMQP_REPLY_SUCCESS)
            }
            self.socket.set(nil)
            amqp_destroy_connection(connection)
            self.connection = nil
        }
        self.isOpen = false
        self.life.end()
        self.status.set(connected: false)
        let closed = AMQPError(.shutdown, "the AMQP connection is closed")
        for pending in self.window.removeAll() { pending.fail(closed) }
        for (_, promise) in self.pendingDeclares { promise.fail(closed) }
        self.pendingDeclares.removeAll()
        for spec in self.consumers.values { spec.continuation.finish() }
        self.consumers.removeAll()
        for command in self.carriedOver + self.mailbox.close() {
            switch command {
            case .publish(let pending): pending.fail(closed)
            case .declare(_, let promise): promise.fail(closed)
            case .consume(let spec): spec.continuation.finish()
            case .shutdown(let promise): promise.succeed(())
            case .cancelConsumer, .holdConsumer, .closeConsumer, .settle: break
            }
        }
        self.stopRequest.answer()
        self.logger.info("AMQP connection closed")
    }

    // MARK: Status codes

    private func check(_ status: Int32, _ context: @autoclosure () -> String) throws {
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(.connection, "\(context()): \(String(cString: amqp_error_string2(status)))")
        }
    }

    private func checkRPC(_ context: @autoclosure () -> String) throws {
        try self.check(amqp_get_rpc_reply(self.connection), context())
    }

    private func check(_ reply: amqp_rpc_reply_t, _ context: @autoclosure () -> String) throws {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            switch reply.reply.id {
            case AMQPMethod.channelClose:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                throw AMQPError(.protocolError, "\(context()): \(close.reply_code) \(close.reply_text.string)")
            case AMQPMethod.connectionClose:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                throw AMQPError(.connection, "\(context()): \(close.reply_code) \(close.reply_text.string)")
            default:
                throw AMQPError(.protocolError, "\(context()): unexpected method \(reply.reply.id)")
            }
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            throw AMQPError(.connection, "\(context()): \(String(cString: amqp_error_string2(reply.library_error)))")
        default:
            throw AMQPError(.connection, "\(context()): no reply")
        }
    }
}

/// AMQP 0-9-1 method ids (class << 16 | method); the C header's macros are casts Swift does not
/// import.
enum AMQPMethod {
    static let connectionClose: amqp_method_number_t = 0x000A_0032
    static let connectionBlocked: amqp_method_number_t = 0x000A_003C
    static let connectionUnblocked: amqp_method_number_t = 0x000A_003D
    static let channelClose: amqp_method_number_t = 0x0014_0028
    static let basicCancel: amqp_method_number_t = 0x003C_001E
    static let basicReturn: amqp_method_number_t = 0x003C_0032
    static let basicDeliver: amqp_method_number_t = 0x003C_003C
    static let basicAck: amqp_method_number_t = 0x003C_0050
    static let basicNack: amqp_method_number_t = 0x003C_0078
}

extension timeval {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self.init(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }
}
