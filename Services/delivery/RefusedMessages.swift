import Foundation
import Synchronization

/// Domain event messages whose recording kept failing on their own, for the event consumer
/// (``DomainEventConsumer``). A message that keeps failing again after other messages were
/// recorded since is poison, and is dead-lettered; one that fails while nothing is recorded
/// may be the victim of a database that refuses every write, and goes back to the queue. At
/// most `capacity` messages are kept; past it they are all forgotten (each then needs one more
/// round to be told apart).
final class RefusedMessages: Sendable {
    private struct State {
        /// Batches recorded so far.
        var recorded = 0
        /// Each refused message, with ``recorded`` when it first kept failing.
        var refused: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let capacity: Int

    init(capacity: Int = 1_000) {
        self.capacity = capacity
    }

    /// Messages kept.
    var count: Int { self.state.withLock { $0.refused.count } }

    /// Counts a batch recorded.
    func recorded() {
        self.state.withLock { $0.recorded += 1 }
    }

    /// Notes that the message `key` kept failing on its own; true when it had before, and a
    /// batch was recorded since: it is poison (and forgotten here).
    func keptFailing(_ key: String) -> Bool {
        self.state.withLock { state in
            if let mark = state.refused[key] {
                guard state.recorded > mark else { return false }
                state.refused[key] = nil
                return true
            }
            if state.refused.count >= self.capacity { state.refused.removeAll() }
            state.refused[key] = state.recorded
            return false
        }
    }
}
