import ThreadedIO

/// A message published and the promises its callers wait on (several when it is a batch, see
/// ``MessageBatch``).
struct PendingPublish: Sendable {
    var message: AMQPMessage
    var promises: [Promise<Void>]

    init(message: AMQPMessage, promise: Promise<Void>?) {
        self.message = message
        self.promises = promise.map { [$0] } ?? []
    }

    init(message: AMQPMessage, promises: [Promise<Void>]) {
        self.message = message
        self.promises = promises
    }

    func succeed() {
        for promise in self.promises { promise.succeed(()) }
    }

    func fail(_ error: any Error) {
        for promise in self.promises { promise.fail(error) }
    }
}

/// What async callers ask of the thread that owns the librabbitmq connection.
enum ConnectionCommand: Sendable {
    case publish(PendingPublish)
    case declare(AMQPTopology, Promise<Void>)
    case consume(ConsumerSpec)
    case cancelConsumer(id: Int)
    case settle(Settlement, tag: UInt64, channel: UInt16, generation: UInt64)
    case shutdown(Promise<Void>)
}
