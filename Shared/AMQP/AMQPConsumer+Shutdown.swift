import ServiceLifecycle
import Synchronization

extension AMQPConsumer {
    /// Runs `consuming`, which reads this consumer to its end, as the body of a service: graceful
    /// shutdown cancels the consumer, and `consuming` returns once the messages already received
    /// have been handed out.
    ///
    /// Throws if the sequence ended before shutdown asked for it (the broker refused the consumer
    /// on a new connection, say): the service then stops with an error, and its process with it,
    /// rather than running on as ready while it consumes nothing.
    public func runUntilShutdown(_ consuming: () async -> Void) async throws {
        let stopping = Atomic(false)
        await withGracefulShutdownHandler {
            await consuming()
        } onGracefulShutdown: {
            stopping.store(true, ordering: .relaxed)
            self.cancel()
        }
        try Task.checkCancellation()
        guard stopping.load(ordering: .relaxed) else {
            throw AMQPError(.protocolError, "the consumer of \(self.queue) ended before shutdown")
        }
    }
}
