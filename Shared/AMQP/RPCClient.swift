import Foundation
import Logging
import MessengerContracts
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import ThreadedIO

/// Calls other services over RabbitMQ: a request to the `messenger.rpc` exchange routed by
/// service name, and the reply on this instance's own exclusive reply queue, matched by
/// correlation id.
///
/// Requests to one service that are published in the same moment travel as one ``MessageBatch``
/// message, and so do their replies; each is still matched to its caller by its own
/// correlation id.
///
/// A request made while a request correlation is bound (``RequestCorrelation``) carries it in
/// its envelope and its `x-correlation-id` header, so it follows the client's request on.
///
/// A service that does not answer within the timeout (down, overloaded, or the broker is
/// unreachable) makes the call throw ``ServiceError`` `unavailable`, never hang. A call made
/// while serving a request ends at that request's deadline at the latest (``RequestDeadline``).
/// Requests carry the timeout as their AMQP expiration, so a service that comes back later
/// does not work on requests whose callers have given up.
public final class RPCClient: Service, Sendable {
    private let connection: AMQPConnection
    private let replyQueue: String
    private let replyQueueType: String
    private let defaultTimeout: Duration
    private let logger: Logger
    private let ready = Gate()
    /// Set once `run()` has ended: no sweep fails overdue calls any more.
    private let stopped = Atomic(false)
    private let pending = Mutex<[String: PendingCall]>([:])
    /// When each service last answered a call of this client (``lastAnswer(from:)``).
    private let lastAnswers = Mutex<[ServiceName: ContinuousClock.Instant]>([:])

    /// A call waiting for its confirm, then its reply; both fail with `unavailable` at the
    /// deadline (see ``failOverdueCalls()``).
    private struct PendingCall: Sendable {
        let confirm = Promise<Void>()
        let reply = Promise<Data>()
        let deadline: ContinuousClock.Instant
        let service: ServiceName

        func fail(_ error: any Error) {
            self.confirm.fail(error)
            self.reply.fail(error)
        }
    }

    /// How often overdue calls are failed: a call's timeout fires up to this much late.
    private static let deadlineTick: TimeAmount = .milliseconds(50)

    /// - Parameter replyQueueType: `x-queue-type` of the reply queue, the deployment's
    ///   (`RABBITMQ_QUEUE_TYPE`): `classic` on one broker, `quorum` on a cluster, where a classic
    ///   durable queue lives on one node and is refused while that node is down, which would fail
    ///   every reconnect of the connections that declare it.
    public init(
        connection: AMQPConnection, instanceName: String, timeout: Duration = .seconds(5), replyQueueType: String = "classic",
        logger: Logger
    ) {
        self.connection = connection
        self.replyQueueType = replyQueueType
        self.replyQueue = "rpc.reply.\(instanceName).\(UUID().lowercasedText)"
        self.defaultTimeout = timeout
        self.logger = logger
    }

    /// The reply queue: this client's alone (its name has a UUID), kept while its consuming
    /// connection starts over and deleted a minute after nothing uses it (`x-expires`). Until the
    /// fiftieth session it was exclusive to that connection, so it went with it: the replies sent
    /// while the connection started over (any channel the broker closed restarts it) were
    /// dropped, and their callers, told `unavailable` for work that was done, retried it (a
    /// refresh's retry read as a reuse and ended the session; a review). And a new connection's
    /// declaration was refused (RESOURCE_LOCKED) until the broker let go of the old one.
    var replyQueueDeclaration: AMQPTopology.Queue {
        .init(
            self.replyQueue, durable: true, exclusive: false, autoDelete: false,
            arguments: ["x-queue-type": .string(self.replyQueueType), "x-expires": .int(Self.replyQueueExpiry)])
    }

    /// How long the reply queue stays once nothing uses it, in milliseconds.
    static let replyQueueExpiry: Int64 = 60_000

    /// Declares the reply queue and routes replies to their callers until graceful shutdown.
    public func run() async throws {
        // The declaration waits while the broker is unreachable: a shutdown then ends it (until
        // the thirty-eighth session a service with an RPC client ignored SIGTERM meanwhile).
        do {
            try await cancelWhenGracefulShutdown {
                try await self.connection.declare(
                    AMQPTopology(exchanges: [.init(ExchangeName.rpc, kind: .direct)], queues: [self.replyQueueDeclaration]))
            }
        } catch {
            guard Task.isShuttingDownGracefully else { throw error }
            self.stopped.store(true, ordering: .relaxed)
            return
        }
        // Replies are acknowledged once handed to their calls: consumed without acks, a reply the
        // broker sent to a consumer whose connection was going (a channel the broker closed
        // restarts it) was lost with it, and its caller, told `unavailable` for work that was
        // done, retried it (a refresh's retry is a reuse, which ends the session). Unacknowledged,
        // it goes back to the queue, and the next connection's consumer gets it. Until the
        // fifty-third session they were not (the integration test of a reply sent while the
        // connection starts over failed about one run in two).
        let consumer = self.connection.consume(queue: self.replyQueue, prefetch: 0)
        self.ready.open()
        // The sweep runs on an event loop's timer. `Task.sleep` goes through Dispatch's timers even
        // with NIO's loops as the global executor: 20 times a second a Dispatch thread woke, then a
        // worker, then a loop, which was 60 % of an idle gateway's CPU (perf).
        let sweep = MultiThreadedEventLoopGroup.singleton.any().scheduleRepeatedTask(
            initialDelay: Self.deadlineTick, delay: Self.deadlineTick
        ) { _ in self.failOverdueCalls() }
        defer {
            sweep.cancel()
            // No reply can come now: the calls still waiting fail, and later ones time out on their own.
            self.stopped.store(true, ordering: .relaxed)
            let waiting = self.pending.withLock { pending in
                defer { pending.removeAll() }
                return pending.values
            }
            for call in waiting { call.fail(ServiceError.unavailable("the RPC client has stopped")) }
        }
        try await consumer.runUntilShutdown {
            for await delivery in consumer {
                if delivery.properties.type == MessageBatch.replyType {
                    do {
                        for item in try MessageBatch(decoding: delivery.body).items {
                            self.deliverReply(item.body, correlationID: item.correlationID)
                        }
                    } catch {
                        self.logger.error("malformed reply batch", metadata: ["error": "\(LoggedError(error))"])
                    }
                } else {
                    self.deliverReply(delivery.body, correlationID: delivery.properties.correlationID)
                }
                delivery.ack()
            }
        }
    }

    private func deliverReply(_ body: Data, correlationID: String?) {
        guard let id = correlationID, let call = self.pending.withLock({ $0.removeValue(forKey: id) }) else {
            self.logger.debug("reply for a call that gave up", metadata: ["call_id": "\(correlationID ?? "-")"])
            return
        }
        // The reply shows the request was published: its confirm may still be on its way on a
        // connection lost since, and the caller must not wait for it past its reply (it waited
        // for the whole outage, then got `unavailable` for a request that was served; the
        // forty-fourth session's review).
        call.confirm.succeed(())
        call.reply.succeed(body)
        let now = ContinuousClock.now
        self.lastAnswers.withLock { $0[call.service] = now }
    }

    /// When `service` last answered one of this client's calls (an error reply counts: it came
    /// from the service), or nil if it never did. The gateway's `/readyz` reads it.
    public func lastAnswer(from service: ServiceName) -> ContinuousClock.Instant? {
        self.lastAnswers.withLock { $0[service] }
    }

    /// Fails the calls whose deadline has passed. One timer for all calls, instead of a timer task
    /// per call: at thousands of calls a second the per-call tasks were a visible share of CPU.
    private func failOverdueCalls() {
        let now = ContinuousClock.now
        let overdue = self.pending.withLock { pending in
            let overdue = pending.filter { $0.value.deadline <= now }
            for id in overdue.keys { pending.removeValue(forKey: id) }
            return overdue.values
        }
        for call in overdue { call.fail(ServiceError.unavailable("\(call.service) did not answer in time")) }
    }

    /// Sends `payload` as a `type` request to `service` and decodes its reply; a remote error
    /// comes back as the thrown ``ServiceError``.
    ///
    /// `offload`, when given, runs the request's encoding (on a thread pool): for a payload large
    /// enough that encoding it on an event loop would hold up the loop's other work (an upload's
    /// file as base64, tens of milliseconds). Swift concurrency's global executor is the event
    /// loops here (``ServiceMain``), so a task executor preference does not take work off them.
    public func call<Payload: Encodable & Sendable, Reply: Decodable & Sendable>(
        _ type: MessageType, to service: ServiceName, payload: Payload, replyAs: Reply.Type = Reply.self,
        actor: UUID? = nil, timeout: Duration? = nil, offload: RPCEncodingOffload? = nil
    ) async throws -> Reply {
        let body = try await self.callRaw(
            type, to: service, payload: payload, actor: actor, timeout: timeout, offload: offload)
        let reply: RPCReply<Reply>
        do {
            reply = try MessengerJSON.decode(RPCReply<Reply>.self, from: body)
        } catch {
            self.logger.error("undecodable reply", metadata: ["type": "\(type)", "error": "\(LoggedError(error))"])
            throw ServiceError.internal()
        }
        return try reply.get()
    }

    /// Like ``call(_:to:payload:replyAs:actor:timeout:)`` but returns the reply's JSON
    /// (`{"ok":...}`) untouched, for passing it on to a client.
    public func callRaw<Payload: Encodable & Sendable>(
        _ type: MessageType, to service: ServiceName, payload: Payload, actor: UUID? = nil, timeout: Duration? = nil,
        offload: RPCEncodingOffload? = nil
    ) async throws -> Data {
        let envelope = Envelope(type: type, actorId: actor, data: payload)
        let body: Data
        if let offload {
            body = try await offload.run { try envelope.encoded() }
        } else {
            body = try envelope.encoded()
        }
        return try await self.send(type, to: service, body: body, header: envelope.header, timeout: timeout)
    }

    /// Sends a request whose payload is already JSON (a client's command passed on as it came,
    /// without decoding and encoding it again) and returns the reply's JSON untouched.
    public func forward(
        _ type: MessageType, to service: ServiceName, payloadJSON: some StringProtocol, actor: UUID? = nil,
        timeout: Duration? = nil
    ) async throws -> Data {
        let header = EnvelopeHeader(
            type: type, id: .v7(), correlationId: RequestCorrelation.id, occurredAt: Date(), actorId: actor)
        return try await self.send(
            type, to: service, body: header.envelopeJSON(data: payloadJSON.utf8), header: header, timeout: timeout)
    }

    private func send(
        _ type: MessageType, to service: ServiceName, body: Data, header: EnvelopeHeader, timeout: Duration?
    ) async throws -> Data {
        // One deadline for the whole call, however long it waits before its publish. A call
        // made while serving a request (``RequestDeadline``) ends when that request's caller
        // stops waiting, if that is sooner: no one would wait for its answer past it (until the
        // fifty-seventh session media's call to messaging for an attach took its own 5 s).
        let now = ContinuousClock.now
        let own = now + (timeout ?? self.defaultTimeout)
        let deadline = min(own, RequestDeadline.current ?? own)
        let timeout = now.duration(to: deadline)
        guard timeout > .zero else { throw ServiceError.unavailable("the request's caller stopped waiting") }
        let id = UUID.random().lowercasedText
        let message = AMQPMessage(
            exchange: ExchangeName.rpc,
            routingKey: service.rawValue,
            body: body,
            properties: AMQPProperties(
                messageID: header.id.lowercasedText, correlationID: id, replyTo: self.replyQueue, type: type.rawValue,
                timestamp: UInt64(header.occurredAt.timeIntervalSince1970),
                expiration: String(Backoff.milliseconds(timeout)),
                headers: header.correlationId.map { ["x-correlation-id": .string($0)] } ?? [:],
                persistent: false),
            mandatory: true
        ).batched(as: MessageBatch.requestType)
        do {
            guard self.ready.isOpen, !self.stopped.load(ordering: .relaxed) else {
                // Not serving replies yet (the broker was unreachable since start), or no longer
                // sweeping overdue calls (stopped): wait with a timer of this call's own.
                return try await withThrowingTaskGroup(of: Data.self) { group in
                    group.addTask {
                        try await self.ready.wait()
                        return try await self.call(message, id: id, service: service, deadline: deadline)
                    }
                    group.addTask {
                        try await Task.sleep(until: deadline)
                        throw ServiceError.unavailable("\(service) did not answer in time")
                    }
                    defer { group.cancelAll() }
                    return try await group.next()!
                }
            }
            return try await self.call(message, id: id, service: service, deadline: deadline)
        } catch let error as AMQPError where error.code == .unroutable {
            throw ServiceError.unavailable("\(service) is not running")
        } catch let error as AMQPError {
            self.logger.warning("RPC publish failed", metadata: ["type": "\(type)", "error": "\(LoggedError(error))"])
            throw ServiceError.unavailable("the message broker is unavailable")
        }
    }

    /// Publishes a request and waits for its reply, both bounded by the call's deadline. Until
    /// the forty-third session a call that first waited for the client to be ready got the whole
    /// timeout again from then: its request could be published, and run, after its caller had
    /// been answered `unavailable`.
    private func call(
        _ message: AMQPMessage, id: String, service: ServiceName, deadline: ContinuousClock.Instant
    ) async throws -> Data {
        try self.connection.check(message)
        let call = PendingCall(deadline: deadline, service: service)
        self.pending.withLock { $0[id] = call }
        defer { _ = self.pending.withLock { $0.removeValue(forKey: id) } }
        // Stopped after this call's check and before it was in `pending`: nothing would fail
        // it (the stop fails only the calls it finds), and no sweep runs (a review in the
        // forty-sixth session). The stop sets `stopped` before it empties `pending`.
        guard !self.stopped.load(ordering: .relaxed) else { throw ServiceError.unavailable("the RPC client has stopped") }
        // The request is dropped, not sent, if it still waits (an outage) when its caller gives
        // up: run later, it could do what the caller was told failed (a refresh token rotated
        // twice reads as reuse and ends the session).
        let pending = PendingPublish(message: message, promise: call.confirm, deadline: call.deadline)
        guard self.connection.publishMailbox.send(.publish(pending)) else {
            throw AMQPError(.shutdown, "the AMQP connection is closed")
        }
        try await call.confirm.value()
        return try await call.reply.value()
    }
}

/// Where an RPC request's encoding runs when it should not run on the caller's event loop (see
/// ``RPCClient/call(_:to:payload:replyAs:actor:timeout:offload:)``): a thread pool's `run`.
public struct RPCEncodingOffload: Sendable {
    let run: @Sendable (@escaping @Sendable () throws -> Data) async throws -> Data

    public init(_ run: @escaping @Sendable (@escaping @Sendable () throws -> Data) async throws -> Data) {
        self.run = run
    }
}
