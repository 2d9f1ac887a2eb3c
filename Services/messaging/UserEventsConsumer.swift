import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import ServiceLifecycle

/// Keeps the ``UserDirectory`` read model from auth's `auth.user_created.v1` and
/// `auth.user_updated.v1` events. Applying an event is an idempotent upsert ordered by the
/// event's time, so redeliveries and reordering are harmless; an undecodable event is parked in
/// ``UserEvents/poisonQueue``, as it came, with a log line.
struct UserEventsConsumer: Service {
    static let queue = UserEvents.queue

    let amqp: AMQPConnection
    let directory: UserDirectory
    let prefetch: UInt16
    let logger: Logger

    /// The queue's declaration (``UserEvents/sharedQueue``, which auth declares too) and the
    /// queue for events that cannot be read.
    static func topology(queueArguments: [String: AMQPFieldValue]) -> AMQPTopology {
        AMQPTopology(declaring: UserEvents.sharedQueue, queueArguments: queueArguments).merged(
            with: AMQPTopology(queues: [.init(UserEvents.poisonQueue, arguments: queueArguments)]))
    }

    func run() async throws {
        let consumer = self.amqp.consume(queue: Self.queue, prefetch: self.prefetch)
        try await consumer.runUntilShutdown {
            for await delivery in consumer {
                guard let event = try? MessengerJSON.decode(Envelope<UserEnvelope>.self, from: delivery.body) else {
                    await self.park(delivery)
                    continue
                }
                // Its log lines carry the correlation id of the request that changed the user.
                await RequestCorrelation.$id.withValue(event.correlationId) {
                    do {
                        try await self.directory.store(event.data.user, at: event.occurredAt)
                        delivery.ack()
                    } catch {
                        self.logger.warning("storing a user failed; redelivering", metadata: ["error": "\(LoggedError(error))"])
                        await delivery.requeueAfterFailure()
                    }
                }
            }
        }
    }

    /// Moves an event that cannot be read to ``UserEvents/poisonQueue``: acknowledged once the
    /// broker confirmed the copy, so it is never lost, and given back to the queue if that fails.
    /// The copy keeps the event's body and properties, but is persistent and never expires
    /// whatever the event said: it waits for an operator.
    private func park(_ delivery: AMQPDelivery) async {
        let messageID = delivery.properties.messageID ?? "-"
        var properties = delivery.properties
        properties.persistent = true
        properties.expiration = nil
        // Properties that cannot be sent again as they came (read as text, a message id with
        // bytes that are not UTF-8 grew past 255) are dropped: the body is what the operator needs.
        if properties.encodingProblem(frameMax: self.amqp.configuration.frameMax) != nil {
            properties = AMQPProperties(
                contentType: nil, type: delivery.properties.type.flatMap { $0.utf8.count <= 255 ? $0 : nil })
        }
        do {
            try await self.amqp.publish(
                AMQPMessage(
                    exchange: "", routingKey: UserEvents.poisonQueue, body: delivery.body, properties: properties,
                    mandatory: true))
            delivery.ack()
            self.logger.error(
                "undecodable user event parked", metadata: ["message_id": "\(messageID)", "queue": "\(UserEvents.poisonQueue)"])
        } catch {
            self.logger.warning(
                "parking an undecodable user event failed; redelivering",
                metadata: ["message_id": "\(messageID)", "error": "\(LoggedError(error))"])
            await delivery.requeueAfterFailure()
        }
    }
}
