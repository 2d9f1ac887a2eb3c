import Foundation
import Logging
import MessengerContracts
import Metrics
import NIOPosix
import ServiceLifecycle
import Synchronization

/// What a handler knows about the request it serves.
public struct RPCContext: Sendable {
    public var type: MessageType
    public var messageID: UUID
    public var correlationID: String?
    public var occurredAt: Date
    /// The authenticated caller, when the request is made on a user's behalf.
    public var actorID: UUID?
    /// When the caller stops waiting for the reply: the request's AMQP `expiration` (what was
    /// left of the caller's timeout when it was published; ``RPCClient``) counted from its
    /// arrival here, less the time it waited in the queue beyond a second
    /// (``RPCServer/deadline(expiration:sentAt:redelivered:arrival:wallClock:)``). Nil for a
    /// request without one.
    /// Work that waits its turn for a scarce resource checks it before it starts: a request
    /// whose caller gave up is then skipped, not worked through while retries queue behind it.
    public var deadline: ContinuousClock.Instant?
    /// The request was delivered before (its first delivery's ack went with a lost connection
    /// or replica): its ``deadline`` is its arrival, as no one can tell how long it waited.
    public var redelivered: Bool
    /// The service's logger. While the handler runs, the request's correlation id is bound
    /// (``RequestCorrelation``), and the services' logging bootstrap adds it to every line as
    /// `correlation_id`; it is not set on this logger, whose handler would render its metadata
    /// again for every request (0.6 to 0.9 % of a service's CPU under load, measured with perf).
    public var logger: Logger
}

/// Maps message types to handlers. Each handler takes the decoded payload and returns the reply
/// payload (``RawJSON`` goes out as it is), or throws a ``ServiceError`` that becomes an error
/// reply.
public struct RPCRouter: Sendable {
    /// A request's reply, and its outcome for the metrics: `ok` or the error's code.
    typealias Handler =
        @Sendable (_ body: Data, _ deadline: ContinuousClock.Instant?, _ redelivered: Bool, _ logger: Logger) async -> (
            reply: Data, outcome: String
        )
    private(set) var handlers: [MessageType: Handler] = [:]
    /// Tells the failures of a dependency that is down (a lost database connection) from bugs:
    /// those are answered `unavailable` (safe to retry) instead of `internal`. Set it before the
    /// handlers are added.
    public var isDependencyDown: @Sendable (any Error) -> Bool = { _ in false }

    public init() {}

    /// Requests at least this big are decoded on NIO's thread pool, not on a thread of the
    /// cooperative pool, which every other request of the service shares: a 25 MiB upload's
    /// JSON (its file in base64) takes tens of milliseconds to decode.
    static let offloadedDecodingSize = 256 * 1024

    /// Decodes a request's body, off the cooperative pool when it is big
    /// (``offloadedDecodingSize``).
    static func decode<Value: Decodable & Sendable>(_ type: Value.Type, from body: Data) async throws -> Value {
        guard body.count >= Self.offloadedDecodingSize else { return try MessengerJSON.decode(type, from: body) }
        return try await NIOThreadPool.singleton.runIfActive { try MessengerJSON.decode(type, from: body) }
    }

    public mutating func on<Payload: Decodable & Sendable, Reply: Encodable & Sendable>(
        _ type: MessageType, _ payload: Payload.Type,
        _ handler: @escaping @Sendable (Payload, RPCContext) async throws -> Reply
    ) {
        let isDependencyDown = self.isDependencyDown
        self.handlers[type] = { body, deadline, redelivered, logger in
            // Its caller stopped waiting while it queued: its work would answer no one, and a
            // write would be done twice when the caller retries. (A request delivered again has
            // its deadline passed too, but its handler may know it from its first delivery's
            // work: auth tells a refresh's second copy from a reuse.)
            if let deadline, !redelivered, deadline <= .now {
                return Self.answer(RPCReply<Reply>.failure(.unavailable("the request waited past its deadline; try again")))
            }
            let envelope: Envelope<Payload>
            do {
                envelope = try await RPCRouter.decode(Envelope<Payload>.self, from: body)
            } catch let error as DecodingError {
                return Self.answer(RPCReply<Reply>.failure(.invalidArgument(Self.describe(error))))
            } catch {
                logger.error("undecodable request", metadata: ["type": "\(type)", "error": "\(LoggedError(error))"])
                return Self.answer(RPCReply<Reply>.failure(.internal()))
            }
            // Bound while the handler runs: the RPCs it makes, the events it records and the lines
            // it logs carry the request's correlation id on; its database calls wait for a
            // connection no longer than its caller waits (a request delivered again, whose
            // caller may still wait, as long as the pool lets them).
            return await RequestCorrelation.$id.withValue(envelope.correlationId) {
                await RequestDeadline.$current.withValue(redelivered ? nil : deadline) {
                    let started = ContinuousClock.now
                    defer {
                        let elapsed = ContinuousClock.now - started
                        // Its caller may have given up already (RPC_TIMEOUT_MS, 5 s by default).
                        if elapsed > RPCServer.slowRequest {
                            logger.warning("slow request", metadata: ["type": "\(type)", "elapsed": "\(elapsed)"])
                        }
                    }
                    let context = RPCContext(
                        type: type, messageID: envelope.id, correlationID: envelope.correlationId,
                        occurredAt: envelope.occurredAt, actorID: envelope.actorId, deadline: deadline,
                        redelivered: redelivered, logger: logger)
                    let reply: RPCReply<Reply>
                    do {
                        let value = try await handler(envelope.data, context)
                        if let raw = value as? RawJSON { return (raw.successReply, "ok") }
                        reply = .success(value)
                    } catch let error as ServiceError {
                        reply = .failure(error)
                    } catch let error as DecodingError {
                        reply = .failure(.invalidArgument(Self.describe(error)))
                    } catch  where isDependencyDown(error) {
                        logger.warning(
                            "handler failed: a dependency is down",
                            metadata: ["type": "\(type)", "error": "\(LoggedError(error))"])
                        reply = .failure(.unavailable("a service dependency is unavailable; try again"))
                    } catch {
                        logger.error("handler failed", metadata: ["type": "\(type)", "error": "\(LoggedError(error))"])
                        reply = .failure(.internal())
                    }
                    return Self.answer(reply)
                }
            }
        }
    }

    /// `reply` encoded, with its outcome: `ok`, or the error's code (a bounded set).
    private static func answer<Reply: Encodable>(_ reply: RPCReply<Reply>) -> (reply: Data, outcome: String) {
        let outcome = reply.ok ? "ok" : (reply.error?.code.rawValue ?? ErrorCode.internal.rawValue)
        return ((try? MessengerJSON.encode(reply)) ?? RPCServer.internalErrorReply, outcome)
    }
}

extension RPCRouter {
    /// A client-safe sentence naming the request field that failed to decode.
    static func describe(_ error: DecodingError) -> String {
        func field(_ path: [any CodingKey]) -> String {
            // The first key is the envelope's `data`; the rest is the client's payload.
            let name = Array(path.dropFirst()).fieldName
            return name.isEmpty ? "the payload" : name
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(field(context.codingPath + [key])) is required"
        case .valueNotFound(_, let context): return "\(field(context.codingPath)) is required"
        case .typeMismatch(_, let context): return "\(field(context.codingPath)) has the wrong type"
        case .dataCorrupted(let context): return "\(field(context.codingPath)) is not valid"
        @unknown default: return "the payload is not valid"
        }
    }
}

/// Serves a service's RPC queue: routes each request by its message type, always replies (an
/// error reply for bad input or an unknown type, never silence), and acks the request after the
/// reply is handed to the connection. Requests run concurrently, at most `prefetch` messages at
/// a time, where a message may be a ``MessageBatch`` of requests, each handled on its own.
///
/// On graceful shutdown it stops consuming, finishes the requests it holds, and returns.
public struct RPCServer: Service {
    /// A handler that takes longer than this is logged, with the request's correlation id (the
    /// duration metric says how many).
    static let slowRequest: Duration = .seconds(2)
    /// How long past its caller's deadline a reply is still sent: a handler that ends at the
    /// deadline answers `unavailable`, and a caller whose clock or transit ran a little behind
    /// hears it.
    static let replyGrace: Duration = .seconds(5)

    static let internalErrorReply = Data(#"{"ok":false,"error":{"code":"internal","message":"internal error"}}"#.utf8)

    private let connection: AMQPConnection
    private let service: ServiceName
    private let prefetch: UInt16
    private let router: RPCRouter
    private let logger: Logger
    private let metrics = RPCServerMetrics()

    public init(connection: AMQPConnection, service: ServiceName, prefetch: UInt16 = 64, router: RPCRouter, logger: Logger) {
        self.connection = connection
        self.service = service
        self.prefetch = prefetch
        self.router = router
        self.logger = logger
    }

    /// The request queue and its binding.
    public static func topology(for service: ServiceName, queueArguments: [String: AMQPFieldValue] = [:]) -> AMQPTopology {
        AMQPTopology(
            exchanges: [.init(ExchangeName.rpc, kind: .direct)],
            queues: [.init(service.rpcQueue, arguments: queueArguments)],
            bindings: [.init(queue: service.rpcQueue, exchange: ExchangeName.rpc, routingKey: service.rawValue)])
    }

    public func run() async throws {
        let consumer = self.connection.consume(queue: self.service.rpcQueue, prefetch: self.prefetch)
        try await consumer.runUntilShutdown {
            await withDiscardingTaskGroup { group in
                for await delivery in consumer {
                    group.addTask { await self.serve(delivery) }
                }
            }
        }
    }

    private func serve(_ delivery: AMQPDelivery) async {
        let replyTo = delivery.properties.replyTo
        let arrival = ContinuousClock.now
        let deadline = Self.deadline(
            expiration: delivery.properties.expiration, sentAt: delivery.properties.headers[AMQPProperties.sentAtHeader],
            redelivered: delivery.redelivered, arrival: arrival, wallClock: AMQPProperties.wallClockMilliseconds())
        if deadline == arrival, !delivery.redelivered { self.cameLate() }
        if delivery.properties.type == MessageBatch.requestType {
            let items: [MessageBatch.Item]
            do {
                items = try MessageBatch(decoding: delivery.body).items
            } catch {
                // Without its items' correlation ids nothing can be answered; the callers time out.
                self.logger.warning("malformed RPC batch dropped", metadata: ["error": "\(LoggedError(error))"])
                delivery.reject(requeue: false)
                return
            }
            await withDiscardingTaskGroup { group in
                for item in items {
                    group.addTask {
                        await self.answer(
                            MessageType(rawValue: item.type), body: item.body, correlationID: item.correlationID,
                            deadline: deadline, redelivered: delivery.redelivered, replyTo: replyTo)
                    }
                }
            }
        } else {
            await self.answer(
                MessageType(rawValue: delivery.properties.type ?? ""), body: delivery.body,
                correlationID: delivery.properties.correlationID, deadline: deadline, redelivered: delivery.redelivered,
                replyTo: replyTo)
        }
        delivery.ack()
    }

    /// When a request's caller stops waiting: its `expiration` (what was left of the caller's
    /// timeout when it was published) counted from its arrival here, less what it waited in the
    /// queue. RabbitMQ drops a request whose `expiration` passes in the queue, but does not
    /// shorten one that waited part of it: counted whole from the arrival, a request that queued
    /// behind the service's prefetch (media's uploads, 8 at a time) had its wait again, and work
    /// that checks the deadline (an upload's record, a refresh token's rotation) was done after
    /// its caller was told `unavailable` (until the fifty-second session; a review).
    ///
    /// The wait is the publisher's wall clock (`sentAt`, ``AMQPProperties/sentAtHeader``, in
    /// milliseconds) against this one's at the arrival (`wallClock`), so it is only counted past
    /// ``clockAllowance`` (1 s), the disagreement between two machines' clocks that it allows
    /// for: the machines' clocks must agree within it (NTP), and a server whose clock runs S
    /// ahead of a publisher's shortens that publisher's windows by S less a second. A wait past
    /// the window and the allowance is the broker's getting the request late (its `expiration`
    /// runs from when it reads the request: a connection whose writes stalled in TCP, or
    /// publishes held while the broker's memory alarm was on): its deadline is taken as passed.
    /// Until the fifty-third session it was taken for a clock's error and the whole window
    /// given again, and a refresh rotated after its caller was told `unavailable` (a review).
    /// A time that does not fit in 64 bits is not counted; and no window is cut below the
    /// allowance. A request delivered again (its first delivery's ack went with a lost
    /// connection or replica) may have waited any time before: its deadline is taken as
    /// passed; such writes refuse it, and a caller still waiting retries.
    static func deadline(
        expiration: String?, sentAt: AMQPFieldValue?, redelivered: Bool, arrival: ContinuousClock.Instant, wallClock: Int64
    ) -> ContinuousClock.Instant? {
        if redelivered { return arrival }
        guard let milliseconds = expiration.flatMap({ Int64($0) }) else { return nil }
        // RabbitMQ takes expirations up to 2³² − 1 ms; a larger one is read as that.
        let window = Duration.milliseconds(min(milliseconds, Int64(UInt32.max)))
        guard case .int(let sent)? = sentAt else { return arrival + window }
        let (waited, overflow) = wallClock.subtractingReportingOverflow(sent)
        guard !overflow else { return arrival + window }
        let queued = Duration.milliseconds(max(0, waited)) - Self.clockAllowance
        guard queued > .zero else { return arrival + window }
        guard queued <= window else { return arrival }
        return arrival + max(window - queued, min(window, Self.clockAllowance))
    }

    /// `rpc_server_late_requests_total`: requests that came after their caller's window
    /// (``deadline(expiration:sentAt:redelivered:arrival:wallClock:)``).
    static let lateRequests = Counter(label: "rpc_server_late_requests_total")
    private static let lastLateWarning = Mutex<ContinuousClock.Instant?>(nil)

    /// Counts a request that came after its window, with a warning a minute at most: many of
    /// them are more likely clocks that disagree by more than ``clockAllowance`` than a broker
    /// that got them late.
    private func cameLate() {
        Self.lateRequests.increment()
        let warns = Self.lastLateWarning.withLock { last in
            let now = ContinuousClock.now
            if let last, now - last < .seconds(60) { return false }
            last = now
            return true
        }
        guard warns else { return }
        self.logger.warning(
            "an RPC request came after its caller's window: the broker got it late, or this machine's clock and its publisher's disagree by more than a second (see rpc_server_late_requests_total)"
        )
    }

    /// How far the publisher's and this machine's clocks may disagree before a request's wait in
    /// the queue is counted (``deadline(expiration:sentAt:redelivered:arrival:wallClock:)``).
    static let clockAllowance: Duration = .seconds(1)

    /// Whether a request's outcome is answered: not a copy delivered again that cannot be served
    /// (see ``answer(_:body:correlationID:deadline:redelivered:replyTo:)``).
    static func replies(redelivered: Bool, outcome: String) -> Bool {
        !(redelivered && outcome == ErrorCode.unavailable.rawValue)
    }

    /// Handles one request and hands its reply to the connection, which sends it with the other
    /// replies to the same queue that are ready in the same moment (see ``MessageBatch``).
    private func answer(
        _ type: MessageType, body: Data, correlationID: String?, deadline: ContinuousClock.Instant?, redelivered: Bool,
        replyTo: String?
    ) async {
        let started = ContinuousClock.now
        let reply: Data
        let outcome: String
        if let handler = self.router.handlers[type] {
            (reply, outcome) = await handler(body, deadline, redelivered, self.logger)
        } else {
            // During a rolling upgrade a newer caller's request type reaches the replicas of the
            // version before it that share the queue: `unavailable` lets the caller try again,
            // and a newer replica serves it (until the sixty-second session it was
            // `invalid_argument`, which a client does not retry; a review).
            self.logger.warning("unknown request type", metadata: ["type": "\(type)"])
            reply =
                (try? MessengerJSON.encode(
                    RPCReply<EmptyPayload>.failure(.unavailable("request type '\(type)' is not served by this replica"))))
                ?? Self.internalErrorReply
            outcome = "unknown_type"
        }
        // A copy delivered again that cannot be served (its deadline is taken as passed: a
        // write refuses it) says nothing its caller's own timeout does not, and its first copy
        // may still be running elsewhere, on a replica whose connection was lost: answered at
        // once, the `unavailable` reached the caller before that copy's real answer, and its
        // retry then found the write done (a registration answered 409 for the caller's own
        // name; a review in the fiftieth session). The caller's deadline answers it instead.
        if !Self.replies(redelivered: redelivered, outcome: outcome) {
            self.logger.debug("no reply to a request delivered again that cannot be served", metadata: ["type": "\(type)"])
        } else if let replyTo, !replyTo.isEmpty {
            func replyMessage(_ body: Data) -> AMQPMessage {
                AMQPMessage(
                    exchange: "", routingKey: replyTo, body: body,
                    properties: AMQPProperties(correlationID: correlationID, type: type.rawValue + ".reply", persistent: false)
                ).batched(as: MessageBatch.replyType)
            }
            // Worth sending while the caller may wait: a reply held past its caller's deadline
            // and ``replyGrace`` (by an outage or a blocked connection) is dropped, not sent to a
            // reply queue whose call is long over. Until the forty-seventh session replies had no
            // deadline. A request delivered again has no known one (its deadline here is taken as
            // passed for writes; its caller may still wait).
            let replyDeadline = redelivered ? nil : deadline.map { $0 + Self.replyGrace }
            do {
                try self.connection.send(replyMessage(reply), deadline: replyDeadline)
            } catch {
                // A reply too large for the broker: the caller gets `internal` now instead of
                // waiting for its timeout.
                self.logger.error("reply refused", metadata: ["type": "\(type)", "error": "\(LoggedError(error))"])
                try? self.connection.send(replyMessage(Self.internalErrorReply), deadline: replyDeadline)
            }
        } else {
            self.logger.warning("request without reply_to", metadata: ["type": "\(type)"])
        }
        // An unknown type is counted under one label: the name a publisher sent, kept as a metric
        // label and a cache key for good, grew both without bound (review).
        let label: MessageType = self.router.handlers[type] == nil ? "unknown" : type
        self.metrics.instruments(for: label, outcome: outcome).record(ContinuousClock.now - started)
    }
}

/// The request counter and duration timer of each message type and outcome, made once: a
/// metrics factory lookup per request is measurable at thousands of requests a second.
final class RPCServerMetrics: Sendable {
    struct Instruments: Sendable {
        let requests: Counter
        let duration: Timer

        func record(_ elapsed: Duration) {
            self.requests.increment()
            self.duration.record(duration: elapsed)
        }
    }

    private let cache = Mutex<[String: Instruments]>([:])

    func instruments(for type: MessageType, outcome: String) -> Instruments {
        let key = "\(type.rawValue)|\(outcome)"
        if let found = self.cache.withLock({ $0[key] }) { return found }
        let made = Instruments(
            requests: Counter(label: "rpc_server_requests_total", dimensions: [("type", type.rawValue), ("outcome", outcome)]),
            duration: Timer(label: "rpc_server_duration_seconds", dimensions: [("type", type.rawValue)]))
        return self.cache.withLock { cache in
            if let found = cache[key] { return found }
            cache[key] = made
            return made
        }
    }
}
