import ThreadedIO

/// A message published and the promise its caller waits on.
struct PendingPublish: Sendable {
    var message: AMQPMessage
    var promise: Promise<Void>?
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
