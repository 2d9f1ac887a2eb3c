/// Names of the exchanges the services talk through. Queues are owned by their consumers; a
/// durable queue that producers must not publish past is a ``SharedQueue`` that they declare too.
public enum ExchangeName {
    /// Direct exchange for requests; the routing key is the ``ServiceName``.
    public static let rpc = "messenger.rpc"
    /// Topic exchange for domain events; the routing key is the event's ``MessageType``.
    public static let events = "messenger.events"
}

/// A durable queue that its consumer owns and that every service publishing into it declares as
/// well, with the same arguments and bindings.
///
/// Events published to an exchange before any queue is bound to it are dropped by the broker (the
/// publishes are not mandatory), and a relay that saw its confirm deletes its outbox row: the
/// event would be lost for good on a fresh broker where the producer starts before its
/// consumer. A producer that declares the consumer's queue first makes such events wait in it.
/// RabbitMQ refuses a second declaration with other arguments (`PRECONDITION_FAILED`), so both
/// sides build the declaration from this one definition (`AMQPTopology(declaring:queueArguments:)`
/// in MessengerAMQP), with the same `RABBITMQ_QUEUE_TYPE`.
public struct SharedQueue: Sendable, Hashable {
    public enum ExchangeKind: String, Sendable, Hashable { case direct, topic }

    public var name: String
    /// The services that publish into it, and so declare it too (its consumer declares it as
    /// its own).
    public var producers: [ServiceName]
    public var exchange: String
    public var exchangeKind: ExchangeKind
    /// One binding of the queue to ``exchange`` per key.
    public var routingKeys: [String]
    /// `x-single-active-consumer`: one replica consumes at a time, in the queue's order.
    public var singleActiveConsumer: Bool
    /// Where rejected messages go (through the default exchange); the consumer declares that queue.
    public var deadLetterQueue: String?

    public init(
        name: String, producers: [ServiceName], exchange: String, exchangeKind: ExchangeKind,
        routingKeys: [String], singleActiveConsumer: Bool = false, deadLetterQueue: String? = nil
    ) {
        self.name = name
        self.producers = producers
        self.exchange = exchange
        self.exchangeKind = exchangeKind
        self.routingKeys = routingKeys
        self.singleActiveConsumer = singleActiveConsumer
        self.deadLetterQueue = deadLetterQueue
    }

    /// Every queue that is declared by its producers as well as by its consumer.
    public static let all: [SharedQueue] = [
        GatewayPushes.sharedQueue, DeliveryEvents.sharedQueue, UserEvents.sharedQueue, DeletedMessageFiles.sharedQueue,
    ]

    /// The queues `service` publishes into and must declare.
    public static func produced(by service: ServiceName) -> [SharedQueue] {
        Self.all.filter { $0.producers.contains(service) }
    }
}

/// Where server-to-client pushes go: every gateway replica consumes the one durable queue
/// (competing consumers) and fans each push out to the sockets through Redis.
public enum GatewayPushes {
    /// Direct exchange for pushes.
    public static let exchange = "messenger.gateway"
    public static let queue = "gateway.pushes"
    public static let routingKey = "push"
    /// The AMQP type of one push.
    public static let pushType = "gateway.push.v1"
    /// The AMQP type of several pushes in one message (a ``MessageBatch`` body in MessengerAMQP).
    public static let batchType = "gateway.push.batch.v1"
    /// How long a push waits in the queue for a gateway (its `expiration`, in milliseconds).
    /// Pushes are the fast path only: the event log, its retries and a client's replay carry
    /// the same events. Without it, a gateway outage filled the broker with pushes (five per
    /// delivery, one per retry) that the gateways then worked through, stale, before any live
    /// one (delivery review, forty-fifth session).
    public static let expiration = "60000"
    /// Consumed by the gateways, declared by delivery too.
    public static let sharedQueue = SharedQueue(
        name: Self.queue, producers: [.delivery], exchange: Self.exchange, exchangeKind: .direct,
        routingKeys: [Self.routingKey])
}

/// Delivery's queue of domain events: every `messaging.*` event on `messenger.events`, consumed
/// by one delivery replica at a time; a poison message is dead-lettered to ``poisonQueue``.
public enum DeliveryEvents {
    public static let queue = "delivery.events"
    public static let routingKey = "messaging.#"
    public static let poisonQueue = "delivery.events.dead"
    /// Consumed by delivery, declared by messaging (its outbox relay publishes the events) too.
    public static let sharedQueue = SharedQueue(
        name: Self.queue, producers: [.messaging], exchange: ExchangeName.events,
        exchangeKind: .topic, routingKeys: [Self.routingKey], singleActiveConsumer: true,
        deadLetterQueue: Self.poisonQueue)
}

/// Messaging's read model of users: auth's `auth.user_created.v1` and `auth.user_updated.v1`.
public enum UserEvents {
    public static let queue = "messaging.users"
    /// Where messaging parks the events it cannot read. ``queue`` has no dead-letter exchange (its
    /// arguments are fixed on running brokers), so the consumer publishes them here itself, and
    /// acknowledges them once the broker has confirmed them.
    public static let poisonQueue = "messaging.users.dead"
    /// Consumed by messaging, declared by auth (its outbox relay publishes the events) too.
    public static let sharedQueue = SharedQueue(
        name: Self.queue, producers: [.auth], exchange: ExchangeName.events, exchangeKind: .topic,
        routingKeys: [AuthMessage.userCreated.rawValue, AuthMessage.userUpdated.rawValue])
}

/// Media's queue of messaging's `messaging.messages_deleted.v1`: the files of a deleted message
/// are deleted. A message media cannot read is dead-lettered to ``poisonQueue``.
public enum DeletedMessageFiles {
    public static let queue = "media.messages-deleted"
    public static let poisonQueue = "media.messages-deleted.dead"
    /// Consumed by media, declared by messaging (its outbox relay publishes the events) too.
    public static let sharedQueue = SharedQueue(
        name: Self.queue, producers: [.messaging], exchange: ExchangeName.events, exchangeKind: .topic,
        routingKeys: [MessagingMessage.messagesDeleted.rawValue], deadLetterQueue: Self.poisonQueue)
}
