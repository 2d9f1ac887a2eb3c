import ThreadedIO

/// A message published and the promises its callers wait on (several when it is a batch, see
/// ``MessageBatch``).
struct PendingPublish: Sendable {
    var message: AMQPMessage
    var promises: [Promise<Void>]
    /// When the message stops being worth sending (an RPC request whose caller gives up then):
    /// one still waiting at that time is dropped instead of published, and its `expiration` is
    /// what is left until then when it is published, after a reconnect too.
    var deadline: ContinuousClock.Instant?

    init(message: AMQPMessage, promise: Promise<Void>?, deadline: ContinuousClock.Instant? = nil) {
        self.message = message
        self.promises = promise.map { [$0] } ?? []
        self.deadline = deadline
    }

    init(message: AMQPMessage, promises: [Promise<Void>], deadline: ContinuousClock.Instant? = nil) {
        self.message = message
        self.promises = promises
        self.deadline = deadline
    }

    /// Whether `deadline` has passed at `now`.
    func isStale(at now: ContinuousClock.Instant) -> Bool {
        self.deadline.map { $0 <= now } ?? false
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
    case holdConsumer(id: Int)
    case closeConsumer(id: Int)
    case settle(Settlement, tag: UInt64, channel: UInt16, generation: UInt64)
    case shutdown(Promise<Void>)
}
