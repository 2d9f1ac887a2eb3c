import Foundation
import Logging
import MessengerContracts
import MessengerServiceKit
import Metrics
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
///
/// A command whose caller stopped waiting (its ``MessageCommand/deadline`` passed while it
/// queued, behind a stalled database say) is not written: it fails as `unavailable`, as the
/// gateway already answered it, and the client's retry with the same `clientMessageId` writes
/// it. Before the forty-second session the writers wrote a whole stale backlog, whose callers
/// had all been told 503, before any fresh command.
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

        /// The oldest commands whose thread no batch is writing, at most `maximum`, and apart,
        /// every queued command whose caller gave up by `now` (taken off the queue, to be failed).
        /// A command that waits makes the later ones of its thread wait too, so a thread's
        /// commands keep their order.
        mutating func takeBatch(maximum: Int, now: ContinuousClock.Instant) -> (batch: [Pending], abandoned: [Pending]) {
            var batch: [Pending] = []
            var abandoned: [Pending] = []
            var waiting: [Pending] = []
            var busy = self.writing
            for pending in self.queue {
                let thread = pending.command.request.threadId
                if pending.command.isAbandoned(at: now) {
                    abandoned.append(pending)
                } else if batch.count < maximum, !busy.contains(thread) {
                    batch.append(pending)
                } else {
                    waiting.append(pending)
                    busy.insert(thread)
                }
            }
            self.queue = waiting
            for pending in batch { self.writing.insert(pending.command.request.threadId) }
            return (batch, abandoned)
        }

        mutating func finished(_ batch: [Pending]) {
            for pending in batch { self.writing.remove(pending.command.request.threadId) }
        }
    }

    /// Commands not written because their caller's deadline passed before their turn.
    private static let abandoned = Counter(label: "messages_abandoned_total")

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
    /// The reply is the `{message}` JSON, encoded once for the reply and the event. `deadline`:
    /// when the caller stops waiting (``RPCContext/deadline``); past it, the command is not
    /// written and fails as `unavailable`.
    func createMessage(
        _ request: CreateMessageRequest, actor: UUID?, deadline: ContinuousClock.Instant?
    ) async throws -> RawJSON {
        let caller = try Conversations.caller(actor)
        var request = request
        request.body = try self.conversations.rules.body(request.body)
        request.clientMessageId = try self.conversations.rules.clientMessageID(request.clientMessageId)
        let promise = Promise<RawJSON>()
        let startDriver = self.state.withLock { state in
            let command = MessageCommand(
                request: request, caller: caller, correlationID: RequestCorrelation.id, deadline: deadline)
            state.queue.append(Pending(command: command, promise: promise))
            guard state.drivers < self.maximumDrivers else { return false }
            state.drivers += 1
            return true
        }
        if startDriver {
            // Drives batches until the queue is empty, independently of this request's task, and
            // so without its correlation id (each command's event carries its own) or deadline
            // (each command's is checked before its batch).
            RequestScope.detach { await self.drive() }
        }
        return try await promise.value()
    }

    private func drive() async {
        while true {
            // A driver stops when nothing is left that it may write; commands that wait for a
            // thread are taken by the driver writing it, once it is done.
            let now = ContinuousClock.now
            let (batch, abandoned) = self.state.withLock { state -> ([Pending], [Pending]) in
                let taken = state.takeBatch(maximum: self.maximumBatch, now: now)
                if taken.batch.isEmpty { state.drivers -= 1 }
                return taken
            }
            self.fail(abandoned)
            guard !batch.isEmpty else { return }
            await self.write(batch)
            self.state.withLock { $0.finished(batch) }
        }
    }

    /// Fails commands whose caller gave up, with nothing written.
    private func fail(_ abandoned: [Pending]) {
        for pending in abandoned { pending.promise.fail(MessageCommand.callerGaveUp) }
        self.count(abandoned: abandoned.count)
    }

    private func count(abandoned: Int) {
        guard abandoned > 0 else { return }
        Self.abandoned.increment(by: abandoned)
        self.conversations.logger.notice(
            "create_message commands whose callers stopped waiting were not written", metadata: ["messages": "\(abandoned)"])
    }

    private func write(_ batch: [Pending]) async {
        do {
            self.settle(batch, try await self.conversations.createMessages(batch.map(\.command)))
        } catch {
            self.conversations.logger.warning(
                "a message batch failed; writing its messages one by one",
                metadata: ["messages": "\(batch.count)", "error": "\(LoggedError(error))"])
            var abandoned = 0
            for pending in batch {
                // Not written again once its caller gave up (the batch waited for a lock, say):
                // each would wait as long again.
                if pending.command.isAbandoned(at: .now) {
                    pending.promise.fail(MessageCommand.callerGaveUp)
                    abandoned += 1
                    continue
                }
                do {
                    self.settle([pending], try await self.conversations.createMessages([pending.command]))
                } catch {
                    pending.promise.fail(error)
                }
            }
            self.count(abandoned: abandoned)
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
