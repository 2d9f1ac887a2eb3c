import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import ServiceLifecycle

/// Deletes the files of deleted messages: messaging's `messaging.messages_deleted.v1` events,
/// from ``DeletedMessageFiles/queue``. An event marks its messages' attachments in one statement
/// and is acknowledged once that committed; the files and rows go right after, and whatever a
/// store could not delete then is tried again by the periodic clean-up (`Attachments.cleanUp`). Marking is idempotent,
/// so a redelivered event changes nothing; one that cannot be read is dead-lettered to
/// ``DeletedMessageFiles/poisonQueue`` with a log line.
struct DeletedMessagesConsumer: Service {
    let amqp: AMQPConnection
    let attachments: Attachments
    let prefetch: UInt16
    let logger: Logger

    /// The queue's declaration (``DeletedMessageFiles/sharedQueue``, which messaging declares
    /// too) and its dead-letter queue.
    static func topology(queueArguments: [String: AMQPFieldValue]) -> AMQPTopology {
        AMQPTopology(declaring: DeletedMessageFiles.sharedQueue, queueArguments: queueArguments).merged(
            with: AMQPTopology(queues: [.init(DeletedMessageFiles.poisonQueue, arguments: queueArguments)]))
    }

    func run() async throws {
        let consumer = self.amqp.consume(queue: DeletedMessageFiles.queue, prefetch: self.prefetch)
        try await consumer.runUntilShutdown {
            for await delivery in consumer {
                guard
                    let event = try? MessengerJSON.decode(
                        Envelope<DomainEvent<DeletedMessages>>.self, from: delivery.body)
                else {
                    self.logger.error(
                        "undecodable message deletion dead-lettered",
                        metadata: ["message_id": "\(delivery.properties.messageID ?? "-")"])
                    delivery.reject(requeue: false)
                    continue
                }
                await RequestCorrelation.$id.withValue(event.correlationId) {
                    await self.handle(event.data.data, delivery: delivery)
                }
            }
        }
    }

    private func handle(_ deleted: DeletedMessages, delivery: AMQPDelivery) async {
        let messages = deleted.messageIds.map(\.uuid)
        do {
            try await self.attachments.markMessagesDeleted(messages)
            delivery.ack()
        } catch {
            self.logger.warning(
                "marking a deleted message's files failed; redelivering", metadata: ["error": "\(LoggedError(error))"])
            await delivery.requeueAfterFailure()
            return
        }
        do {
            let removed = try await self.attachments.removeMarked(of: messages)
            if removed > 0 { self.logger.debug("removed files of deleted messages", metadata: ["files": "\(removed)"]) }
        } catch {
            self.logger.warning(
                "removing files of deleted messages failed; the clean-up tries again",
                metadata: ["error": "\(LoggedError(error))"])
        }
    }
}
