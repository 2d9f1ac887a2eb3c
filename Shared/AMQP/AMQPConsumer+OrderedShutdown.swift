import ServiceLifecycle
import Synchronization

extension AMQPConsumer {
    /// ``runUntilShutdown(_:)`` for a queue whose order must hold across a handover to another
    /// replica (`x-single-active-consumer`).
    ///
    /// `basic.cancel` makes the broker activate the next consumer at once: it takes later
    /// messages while this one still handles those it had received, and the two write at the
    /// same time. Here graceful shutdown lets the batch under way finish (`consuming` asks
    /// ``OrderedHandover/begin()`` before a batch and ``OrderedHandover/end()`` after it),
    /// `consuming` returns once it has settled what it handled, and the consumer's channel is
    /// then closed (``close()``): what it received and did not handle goes back to the queue in
    /// its place, before the next consumer gets anything. A consumer idle at shutdown ends its
    /// sequence at once but keeps its channel (``AMQPConsumer/hold()``) until `consuming`
    /// returns, so the acks of batches it handled and has not settled yet (a confirm still on its
    /// way) are sent before the close: until the forty-second session it closed at once, those
    /// acks were dropped, and the next replica handled those messages again.
    public func runInOrderUntilShutdown(_ consuming: (OrderedHandover) async -> Void) async throws {
        let handover = OrderedHandover(consumer: self)
        await withGracefulShutdownHandler {
            await consuming(handover)
        } onGracefulShutdown: {
            handover.stop()
        }
        self.close()
        try Task.checkCancellation()
        guard handover.isStopping else {
            throw AMQPError(.protocolError, "the consumer of \(self.queue) ended before shutdown")
        }
    }
}

/// Whether a consumer in ``AMQPConsumer/runInOrderUntilShutdown(_:)`` may take its next batch.
public final class OrderedHandover: Sendable {
    private let consumer: AMQPConsumer
    private let state = Mutex((handling: false, stopping: false))

    init(consumer: AMQPConsumer) {
        self.consumer = consumer
    }

    /// Before handling a batch: false once shutdown has begun (the batch is left unsettled and
    /// goes back to the queue).
    public func begin() -> Bool {
        self.state.withLock { state in
            guard !state.stopping else { return false }
            state.handling = true
            return true
        }
    }

    /// After handling a batch: false once shutdown has begun (take no more).
    public func end() -> Bool {
        self.state.withLock { state in
            state.handling = false
            return !state.stopping
        }
    }

    var isStopping: Bool { self.state.withLock { $0.stopping } }

    /// Graceful shutdown: an idle consumer's sequence ends now, with its channel kept open for
    /// the acks still to come; a busy one stops after its batch.
    func stop() {
        let idle = self.state.withLock { state in
            state.stopping = true
            return !state.handling
        }
        if idle { self.consumer.hold() }
    }
}
