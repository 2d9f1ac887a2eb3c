/// Names of the exchanges the services talk through. Queues are owned by their consumers.
public enum ExchangeName {
    /// Direct exchange for requests; the routing key is the ``ServiceName``.
    public static let rpc = "messenger.rpc"
    /// Topic exchange for domain events; the routing key is the event's ``MessageType``.
    public static let events = "messenger.events"
}
