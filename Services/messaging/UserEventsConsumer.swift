import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import ServiceLifecycle

/// Keeps the ``UserDirectory`` read model from auth's `auth.user_created.v1` and
/// `auth.user_updated.v1` events. Applying an event is an idempotent upsert ordered by the
/// event's time, so redeliveries and reordering are harmless; an undecodable event is
/// dead-lettered with a log line.
struct UserEventsConsumer: Service {
    static let queue = UserEvents.queue

    let amqp: AMQPConnection
    let directory: UserDirectory
    let prefetch: UInt16
    let logger: Logger

    /// The queue's declaration: ``UserEvents/sharedQueue``, which auth declares too.
    static func topology(queueArguments: [String: AMQPFieldValue]) -> AMQPTopology {
        AMQPTopology(declaring: UserEvents.sharedQueue, queueArguments: queueArguments)
    }

    func run() async throws {
        let consumer = self.amqp.consume(queue: Self.queue, prefetch: self.prefetch)
        await withGracefulShutdownHandler {
            for await delivery in consumer {
                guard let event = try? MessengerJSON.decode(Envelope<UserEnvelope>.self, from: delivery.body) else {
                    self.logger.error(
                        "undecodable user event rejected", metadata: ["message_id": "\(delivery.properties.messageID ?? "-")"])
                    delivery.reject(requeue: false)
                    continue
                }
                do {
                    try await self.directory.store(event.data.user, at: event.occurredAt)
                    delivery.ack()
                } catch {
                    self.logger.warning("storing a user failed; redelivering", metadata: ["error": "\(error)"])
                    delivery.nack(requeue: true)
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        } onGracefulShutdown: {
            consumer.cancel()
        }
    }
}
