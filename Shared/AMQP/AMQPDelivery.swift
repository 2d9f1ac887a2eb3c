import Foundation
import Synchronization
import ThreadedIO

/// One message handed to a consumer. Settle it exactly once with `ack`, `nack` or `reject`
/// after its work has committed; later calls are ignored.
///
/// A delivery belongs to the connection it arrived on: if that connection was lost before the
/// settlement reached the broker, the broker requeues the message and it arrives again
/// (`redelivered == true`), which is why consumers deduplicate by message id.
public struct AMQPDelivery: Sendable {
    public let body: Data
    public let properties: AMQPProperties
    public let exchange: String
    public let routingKey: String
    public let redelivered: Bool

    let tag: UInt64
    let channel: UInt16
    let generation: UInt64
    let settlement: SettlementHandle

    /// Confirms the message is done with: the broker forgets it.
    public func ack() {
        self.settlement.settle(.ack, tag: self.tag, channel: self.channel, generation: self.generation)
    }

    /// Gives the message back: requeued, or dead-lettered when `requeue` is false.
    public func nack(requeue: Bool) {
        self.settlement.settle(.nack(requeue: requeue), tag: self.tag, channel: self.channel, generation: self.generation)
    }

    /// Refuses the message; with `requeue: false` it goes to the queue's dead-letter exchange.
    public func reject(requeue: Bool) {
        self.settlement.settle(.reject(requeue: requeue), tag: self.tag, channel: self.channel, generation: self.generation)
    }

    /// False once the connection it arrived on is lost: the broker has the message back in its
    /// queue, in its place, and hands it out again, and settling this copy does nothing. A
    /// consumer that holds messages for a while (delivery's, behind a failure that stays) drops
    /// such copies rather than handle them before the messages ahead of them come again.
    public var canBeSettled: Bool { !self.settlement.connection.hasEnded }
}

/// The life of one AMQP connection, for its deliveries: ended once it is lost or closed.
final class ConnectionLife: Sendable {
    private let ended = Atomic(false)

    var hasEnded: Bool { self.ended.load(ordering: .acquiring) }

    func end() {
        self.ended.store(true, ordering: .releasing)
    }
}

extension AMQPDelivery {
    /// Returns the message to its queue after a failure that may pass (PostgreSQL or the broker
    /// away), then waits a second, so that the consumer does not take it again at once and spin.
    public func requeueAfterFailure() async {
        await [self].requeueAfterFailure()
    }
}

extension Sequence where Element == AMQPDelivery {
    /// ``AMQPDelivery/requeueAfterFailure()`` for several messages, with one wait.
    public func requeueAfterFailure() async {
        for delivery in self { delivery.nack(requeue: true) }
        try? await Task.sleep(for: .seconds(1))
    }
}

/// How a delivery is settled.
enum Settlement: Sendable {
    case ack
    case nack(requeue: Bool)
    case reject(requeue: Bool)
}

/// Sends a delivery's settlement to its connection, at most once.
final class SettlementHandle: Sendable {
    private let settled = Atomic(false)
    private let mailbox: Mailbox<ConnectionCommand>
    /// The connection the delivery arrived on.
    let connection: ConnectionLife

    init(mailbox: Mailbox<ConnectionCommand>, connection: ConnectionLife) {
        self.mailbox = mailbox
        self.connection = connection
    }

    func settle(_ settlement: Settlement, tag: UInt64, channel: UInt16, generation: UInt64) {
        guard self.settled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        self.mailbox.send(.settle(settlement, tag: tag, channel: channel, generation: generation))
    }
}

/// The messages of one queue, as an `AsyncSequence`. Registered consumers survive reconnects:
/// the connection consumes again on every new connection. `cancel()` stops consuming; the
/// sequence then ends after the messages already received have been handed out.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    let id: Int
    /// The queue consumed.
    public let queue: String
    let stream: AsyncStream<AMQPDelivery>
    let mailbox: Mailbox<ConnectionCommand>

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: self.stream.makeAsyncIterator())
    }

    /// Hands out the deliveries until the sequence ends, or until the task reading it is
    /// cancelled: its consumer's channel is then closed (``AMQPConnection/consume(queue:prefetch:autoAck:)``),
    /// so what was received and not handed out yet goes back to the queue, and an ack given
    /// from then on would count for nothing.
    public struct Iterator: AsyncIteratorProtocol {
        var base: AsyncStream<AMQPDelivery>.AsyncIterator

        public mutating func next() async -> AMQPDelivery? {
            // Asked even when cancelled already: that is how the stream learns of it, and ends.
            let delivery = await self.base.next()
            guard !Task.isCancelled else { return nil }
            return delivery
        }
    }

    /// Stops the flow of new messages (`basic.cancel`).
    public func cancel() {
        self.mailbox.send(.cancelConsumer(id: self.id))
    }

    /// Ends the sequence while the channel stays open, so that acks still on their way count:
    /// what the broker hands the consumer afterwards stays unsettled (within the prefetch) until
    /// ``close()`` gives it back in place. For a consumer of a single-active-consumer queue idle
    /// at shutdown, whose last batches are not settled yet.
    public func hold() {
        self.mailbox.send(.holdConsumer(id: self.id))
    }

    /// Stops consuming by closing the consumer's channel, once the acks given so far are sent:
    /// the messages received and not settled go back to the queue in their places, before the
    /// broker hands anything to another consumer, and settling them later does nothing. The
    /// sequence ends.
    ///
    /// For a queue whose order must hold across a handover (`x-single-active-consumer`):
    /// ``cancel()`` makes the broker activate the next consumer at once, which then takes later
    /// messages while this one still handles those it received.
    public func close() {
        self.mailbox.send(.closeConsumer(id: self.id))
    }
}

/// What the connection needs to (re)start a consumer.
struct ConsumerSpec: Sendable {
    var id: Int
    var queue: String
    var prefetch: UInt16
    var autoAck: Bool
    var continuation: AsyncStream<AMQPDelivery>.Continuation
}
