/// Names of the exchanges the services talk through. Queues are owned by their consumers.
public enum ExchangeName {
    /// Direct exchange for requests; the routing key is the ``ServiceName``.
    public static let rpc = "messenger.rpc"
    /// Topic exchange for domain events; the routing key is the event's ``MessageType``.
    public static let events = "messenger.events"
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
}
