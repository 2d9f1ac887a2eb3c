import DequeModule
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import ServiceLifecycle
import Synchronization

/// Schedules the first retry check of pushed events for a short window of batches at once,
/// and acks their domain events once that check is confirmed.
///
/// One check per pushed batch made a persistent message (and, when it came due, a dead-letter
/// hop, a consume and an update) for every message at low rates, where a batch is one event.
/// Events wait at most `window` for their check (a small fraction of the first retry delay),
/// and their domain events stay unacknowledged until it is confirmed: a crash before that
/// redelivers them, and the event log pushes what is still pending again.
final class FirstRetryChecks: Service {
    private struct Waiting {
        var events: [EntityID] = []
        var deliveries: [AMQPDelivery] = []
        /// Shutting down: whatever comes now is scheduled at once.
        var closing = false
    }

    private let publisher: PushPublisher
    private let window: Duration
    /// Scheduled at once, without waiting for the window, past this many domain events (the
    /// consumer's prefetch would otherwise run out while they wait).
    private let limit: Int
    private let logger: Logger
    private let waiting = Mutex(Waiting())
    /// One ``schedule()`` at a time, in turn: ``flush()`` returns once the one under way has
    /// acked what it took (until the fortieth session a flush at shutdown found nothing left
    /// while the timer's check waited for its confirm, and the consumer's channel closed before
    /// that check's acks, so the next replica pushed those events once more).
    private let turns = Turns()

    init(publisher: PushPublisher, window: Duration, limit: Int, logger: Logger) {
        self.publisher = publisher
        self.window = window
        self.limit = max(1, limit)
        self.logger = logger
    }

    /// Adds the events of a pushed batch; `deliveries` (the domain events they came in) are
    /// acked once their check is confirmed.
    func add(events: [EntityID], acking deliveries: [AMQPDelivery]) async {
        let now = self.waiting.withLock { waiting in
            waiting.events += events
            waiting.deliveries += deliveries
            return waiting.closing || waiting.deliveries.count >= self.limit
        }
        if now { await self.schedule() }
    }

    func run() async throws {
        // Only the wait ends at graceful shutdown, not a check under way: cancelled, its publish
        // stopped waiting for the confirm and nacked what it took, and the next replica pushed
        // those events again (the forty-first session's review; the whole loop was cancelled).
        while (try? await cancelWhenGracefulShutdown({ try await LoopTimer.sleep(for: self.window) })) != nil {
            await self.schedule()
        }
        // The consumer may still finish a batch: from now on, each is scheduled as it comes
        // (the AMQP connection stops after the workers).
        self.waiting.withLock { $0.closing = true }
        await self.schedule()
    }

    /// Schedules what waits now, and acks its domain events once the check is confirmed.
    func flush() async {
        await self.schedule()
    }

    private func schedule() async {
        await self.turns.take()
        defer { self.turns.pass() }
        let taken = self.waiting.withLock { waiting in
            defer { (waiting.events, waiting.deliveries) = ([], []) }
            return waiting
        }
        guard !taken.deliveries.isEmpty else { return }
        var seen = Set<EntityID>()
        let events = taken.events.filter { seen.insert($0).inserted }
        do {
            if let check = try self.publisher.retryCheck(events: events, attempt: 1) {
                try await self.publisher.amqp.publish([check])
            }
            for delivery in taken.deliveries { delivery.ack() }
        } catch {
            self.logger.warning(
                "scheduling retry checks failed; their events will come again",
                metadata: ["events": "\(events.count)", "error": "\(LoggedError(error))"])
            // After a pause, as every consumer's failure: the events come back to this consumer
            // at once, and the event log pushes them again, so a broker refusing the check for a
            // while made about ten push storms a second (until the fifty-fifth session; a review).
            // The turn is held meanwhile, so the next check waits too.
            await taken.deliveries.requeueAfterFailure()
        }
    }
}

/// A turn for async work, given in the order it was asked for.
private final class Turns: Sendable {
    private let state = Mutex<(taken: Bool, waiting: Deque<CheckedContinuation<Void, Never>>)>((false, []))

    func take() async {
        await withCheckedContinuation { (turn: CheckedContinuation<Void, Never>) in
            let now = self.state.withLock { state in
                guard state.taken else {
                    state.taken = true
                    return true
                }
                state.waiting.append(turn)
                return false
            }
            if now { turn.resume() }
        }
    }

    /// Gives the turn to the next in line, or frees it.
    func pass() {
        let next = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let next = state.waiting.popFirst() else {
                state.taken = false
                return nil
            }
            return next
        }
        next?.resume()
    }
}
