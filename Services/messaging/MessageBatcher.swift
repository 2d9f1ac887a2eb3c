import Foundation
import Logging
import MessengerContracts
import MessengerServiceKit
import PostgresNIO
import Synchronization
import ThreadedIO

/// Group commit for `create_message`: commands that arrive while a batch is being written wait
/// and are written together in the next one, one transaction for up to `maximumBatch` messages
/// (the thread rows locked in id order, set-based checks, multi-row inserts of the messages and
/// their outbox events). Under load this turns several round trips and one WAL flush per
/// message into a handful per batch; alone, a command is a batch of one.
///
/// Each command gets its own answer: errors (not a member, a bad `replyToId`) fail only their
/// command, a retry finds its original. If a batch fails as a whole (a lost connection, a
/// constraint raced by another replica), its commands are written again one by one, so one
/// bad command never fails the others.
final class MessageBatcher: Sendable {
    private struct Pending: Sendable {
        var command: MessageCommand
        var promise: Promise<RawJSON>
    }

    private struct State {
        var queue: [Pending] = []
        var drivers = 0
        /// The threads of the batches being written. A thread is in one batch at a time: two
        /// concurrent batches would plan the same next seq from ``KnownThreads``, and one of them
        /// would collide and be written again under the locks.
        var writing: Set<EntityID> = []

        /// The oldest commands whose thread no batch is writing, at most `maximum`. A command
        /// that waits makes the later ones of its thread wait too, so a thread's commands keep
        /// their order.
        mutating func takeBatch(maximum: Int) -> [Pending] {
            var batch: [Pending] = []
            var waiting: [Pending] = []
            var busy = self.writing
            for pending in self.queue {
                let thread = pending.command.request.threadId
                if batch.count < maximum, !busy.contains(thread) {
                    batch.append(pending)
                } else {
                    waiting.append(pending)
                    busy.insert(thread)
                }
            }
            self.queue = waiting
            for pending in batch { self.writing.insert(pending.command.request.threadId) }
            return batch
        }

        mutating func finished(_ batch: [Pending]) {
            for pending in batch { self.writing.remove(pending.command.request.threadId) }
        }
    }

    private let conversations: Conversations
    private let maximumBatch: Int
    private let maximumDrivers: Int
    private let state = Mutex(State())

    init(conversations: Conversations, maximumBatch: Int = 256, concurrentBatches: Int = 2) {
        self.conversations = conversations
        self.maximumBatch = maximumBatch
        self.maximumDrivers = concurrentBatches
    }

    /// `create_message` (see ``Conversations/createMessages(_:)`` for the rules).
    /// The reply is the `{message}` JSON, encoded once for the reply and the event.
    func createMessage(_ request: CreateMessageRequest, actor: UUID?) async throws -> RawJSON {
        let caller = try Conversations.caller(actor)
        var request = request
        request.body = try MessagingRules.body(request.body)
        request.clientMessageId = try MessagingRules.clientMessageID(request.clientMessageId)
        let promise = Promise<RawJSON>()
        let startDriver = self.state.withLock { state in
            let command = MessageCommand(request: request, caller: caller, correlationID: RequestCorrelation.id)
            state.queue.append(Pending(command: command, promise: promise))
            guard state.drivers < self.maximumDrivers else { return false }
            state.drivers += 1
            return true
        }
        if startDriver {
            // Drives batches until the queue is empty, independently of this request's task, and
            // so without its correlation id (each command's event carries its own).
            Task { await RequestCorrelation.$id.withValue(nil) { await self.drive() } }
        }
        return try await promise.value()
    }

    private func drive() async {
        while true {
            // A driver stops when nothing is left that it may write; commands that wait for a
            // thread are taken by the driver writing it, once it is done.
            let batch = self.state.withLock { state -> [Pending] in
                let batch = state.takeBatch(maximum: self.maximumBatch)
                if batch.isEmpty { state.drivers -= 1 }
                return batch
            }
            guard !batch.isEmpty else { return }
            await self.write(batch)
            self.state.withLock { $0.finished(batch) }
        }
    }

    private func write(_ batch: [Pending]) async {
        do {
            self.settle(batch, try await self.conversations.createMessages(batch.map(\.command)))
        } catch {
            self.conversations.logger.warning(
                "a message batch failed; writing its messages one by one",
                metadata: ["messages": "\(batch.count)", "error": "\(LoggedError(error))"])
            for pending in batch {
                do {
                    self.settle([pending], try await self.conversations.createMessages([pending.command]))
                } catch {
                    pending.promise.fail(error)
                }
            }
        }
    }

    private func settle(_ batch: [Pending], _ results: [Result<RawJSON, ServiceError>]) {
        for (pending, result) in zip(batch, results) {
            switch result {
            case .success(let message): pending.promise.succeed(message)
            case .failure(let error): pending.promise.fail(error)
            }
        }
    }
}
