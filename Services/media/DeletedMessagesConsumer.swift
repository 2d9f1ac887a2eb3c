import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import ServiceLifecycle

/// Deletes the files of deleted messages: messaging's `messaging.messages_deleted.v1` events,
/// from ``DeletedMessageFiles/queue``. An event marks its messages' attachments in one statement
/// (a deleted message lists no attachments, but a file stays reachable by its URL until it is
/// removed) and is acknowledged once that committed; the files and rows go next, in a task of
/// their own, and whatever a store could not delete then is tried again by the periodic
/// clean-up (`Attachments.cleanUp`). Marking is idempotent, so a
/// redelivered event changes nothing; one that cannot be read is dead-lettered to
/// ``DeletedMessageFiles/poisonQueue`` with a log line.
///
/// Removing a file may take minutes while Cloudinary hangs (each attempt waits its timeout).
/// Until the forty-fifth session the consumer removed an event's files before it took the next
/// event, so every later deletion waited, unmarked, behind the files of the ones before
/// (review). Now marking never waits for a removal: at most ``pendingRemovals`` deletions wait
/// for theirs, and past that the oldest are left to the clean-up; and a deletion's removal ends
/// after ``removalTime`` (until the fifty-sixth session a hanging store held each one for three
/// minutes a file, a review), what is left going to the clean-up too.
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

    /// Deletions whose files wait for their removal, at most.
    static let pendingRemovals = 1_024

    /// How long one deletion's files are removed for, at most.
    static let removalTime: Duration = .seconds(60)

    func run() async throws {
        let consumer = self.amqp.consume(queue: DeletedMessageFiles.queue, prefetch: self.prefetch)
        let (removals, pending) = AsyncStream.makeStream(
            of: [UUID].self, bufferingPolicy: .bufferingNewest(Self.pendingRemovals))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                for await messages in removals {
                    // What is left at shutdown stays marked for the clean-up.
                    guard !Task.isShuttingDownGracefully else { break }
                    await self.removeFiles(of: messages)
                }
            }
            defer { pending.finish() }
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
                    let messages = event.data.data.messageIds.map(\.uuid)
                    let marked = await RequestCorrelation.$id.withValue(event.correlationId) {
                        await self.mark(messages, delivery: delivery)
                    }
                    if marked { pending.yield(messages) }
                }
            }
        }
    }

    /// Marks the messages' files for removal and acknowledges the event; false when it goes back
    /// to the queue.
    private func mark(_ messages: [UUID], delivery: AMQPDelivery) async -> Bool {
        do {
            try await self.attachments.markMessagesDeleted(messages)
            delivery.ack()
            return true
        } catch {
            self.logger.warning(
                "marking a deleted message's files failed; redelivering", metadata: ["error": "\(LoggedError(error))"])
            await delivery.requeueAfterFailure()
            return false
        }
    }

    private func removeFiles(of messages: [UUID]) async {
        do {
            let removed = try await self.attachments.removeMarked(of: messages, deadline: .now + Self.removalTime)
            if removed > 0 { self.logger.debug("removed files of deleted messages", metadata: ["files": "\(removed)"]) }
        } catch {
            self.logger.warning(
                "removing files of deleted messages failed; the clean-up tries again",
                metadata: ["error": "\(LoggedError(error))"])
        }
    }
}
