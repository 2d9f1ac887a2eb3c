import Synchronization

extension AMQPConsumer {
    /// The deliveries in batches of at most `maximum`: each batch is whatever arrived while the
    /// previous one was being processed (one delivery when the queue is quiet), in arrival order.
    /// For consumers that write a batch in one transaction. Ends when the consumer ends.
    public func batches(maximum: Int) -> AMQPBatches {
        AMQPBatches(consumer: self, maximum: maximum)
    }
}

/// See ``AMQPConsumer/batches(maximum:)``.
public struct AMQPBatches: AsyncSequence, Sendable {
    public typealias Element = [AMQPDelivery]
    let consumer: AMQPConsumer
    let maximum: Int

    public func makeAsyncIterator() -> AsyncIterator {
        let buffer = Buffer()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let consumer = self.consumer
        Task {
            for await delivery in consumer {
                buffer.deliveries.withLock { $0.append(delivery) }
                wake.yield()
            }
            wake.finish()
        }
        return AsyncIterator(wakeups: wakeups.makeAsyncIterator(), buffer: buffer, maximum: self.maximum)
    }

    final class Buffer: Sendable {
        let deliveries = Mutex<[AMQPDelivery]>([])

        func take(_ maximum: Int) -> [AMQPDelivery] {
            self.deliveries.withLock { deliveries in
                let batch = Array(deliveries.prefix(maximum))
                deliveries.removeFirst(batch.count)
                return batch
            }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var wakeups: AsyncStream<Void>.AsyncIterator
        let buffer: Buffer
        let maximum: Int

        public mutating func next() async -> [AMQPDelivery]? {
            while true {
                let batch = self.buffer.take(self.maximum)
                if !batch.isEmpty { return batch }
                guard await self.wakeups.next() != nil else {
                    let rest = self.buffer.take(self.maximum)
                    return rest.isEmpty ? nil : rest
                }
            }
        }

        /// What arrived since the last batch, at most `maximum`, without waiting (none when
        /// nothing did): for a consumer that holds messages at the head of its queue and tries
        /// them again with what comes behind them.
        public func arrived(maximum: Int) -> [AMQPDelivery] {
            self.buffer.take(Swift.max(0, maximum))
        }
    }
}
