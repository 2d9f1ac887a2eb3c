import MessengerContracts

extension AMQPTopology {
    /// The declaration of `queue` (its exchange, the queue with its arguments, its bindings):
    /// the same for its consumer and its producers, so the broker accepts both.
    /// `queueArguments` are the deployment's (`x-queue-type`).
    public init(declaring queue: SharedQueue, queueArguments: [String: AMQPFieldValue]) {
        var arguments = queueArguments
        if queue.singleActiveConsumer {
            arguments["x-single-active-consumer"] = .bool(true)
        }
        if let deadLetterQueue = queue.deadLetterQueue {
            arguments["x-dead-letter-exchange"] = .string("")
            arguments["x-dead-letter-routing-key"] = .string(deadLetterQueue)
        }
        let kind: Exchange.Kind =
            switch queue.exchangeKind {
            case .direct: .direct
            case .topic: .topic
            }
        self.init(
            exchanges: [.init(queue.exchange, kind: kind)],
            queues: [.init(queue.name, arguments: arguments)],
            bindings: queue.routingKeys.map { .init(queue: queue.name, exchange: queue.exchange, routingKey: $0) })
    }

    /// What `service` declares for the queues it publishes into (``SharedQueue/produced(by:)``).
    public static func sharedQueues(producedBy service: ServiceName, queueArguments: [String: AMQPFieldValue]) -> AMQPTopology {
        SharedQueue.produced(by: service).reduce(AMQPTopology()) {
            $0.merged(with: AMQPTopology(declaring: $1, queueArguments: queueArguments))
        }
    }
}
