/// Exchanges, queues and bindings a client needs. Declared at connect and again after every
/// reconnect, so declarations must be idempotent (same arguments every time).
public struct AMQPTopology: Sendable, Hashable {
    public struct Exchange: Sendable, Hashable {
        public enum Kind: String, Sendable { case direct, topic, fanout, headers }
        public var name: String
        public var kind: Kind
        public var durable: Bool
        public init(_ name: String, kind: Kind, durable: Bool = true) {
            self.name = name
            self.kind = kind
            self.durable = durable
        }
    }

    public struct Queue: Sendable, Hashable {
        public var name: String
        public var durable: Bool
        public var exclusive: Bool
        public var autoDelete: Bool
        /// `x-queue-type`, `x-dead-letter-exchange`, `x-message-ttl`, ...
        public var arguments: [String: AMQPFieldValue]
        public init(
            _ name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
            arguments: [String: AMQPFieldValue] = [:]
        ) {
            self.name = name
            self.durable = durable
            self.exclusive = exclusive
            self.autoDelete = autoDelete
            self.arguments = arguments
        }
    }

    public struct Binding: Sendable, Hashable {
        public var queue: String
        public var exchange: String
        public var routingKey: String
        public init(queue: String, exchange: String, routingKey: String) {
            self.queue = queue
            self.exchange = exchange
            self.routingKey = routingKey
        }
    }

    public var exchanges: [Exchange]
    public var queues: [Queue]
    public var bindings: [Binding]

    public init(exchanges: [Exchange] = [], queues: [Queue] = [], bindings: [Binding] = []) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }

    /// This topology followed by `other`'s declarations.
    public func merged(with other: AMQPTopology) -> AMQPTopology {
        AMQPTopology(
            exchanges: self.exchanges + other.exchanges,
            queues: self.queues + other.queues,
            bindings: self.bindings + other.bindings
        )
    }

    /// This topology without its exclusive queues and their bindings.
    public var withoutExclusiveQueues: AMQPTopology {
        let exclusive = Set(self.queues.filter(\.exclusive).map(\.name))
        return AMQPTopology(
            exchanges: self.exchanges,
            queues: self.queues.filter { !$0.exclusive },
            bindings: self.bindings.filter { !exclusive.contains($0.queue) })
    }
}
