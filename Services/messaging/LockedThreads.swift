import Foundation
import Synchronization

/// Threads, and messages replied to, whose row another session held locked longer than
/// messaging's `lock_timeout` (a replica that froze inside its batch's transaction, or inside a
/// delete or a reaction of a message, say). While a row is here, a `create_message` batch with a
/// command that needs it skips locked rows instead of waiting for them
/// (``Conversations/createMessages(_:)``): the commands that need it are answered `unavailable`
/// at once, and the batch's other commands are written. A row leaves when a batch locks it, or
/// `memory` after it was first found (PostgreSQL ends a frozen holder's session after
/// `idle_in_transaction_session_timeout`, 30 s by default). At most `capacity` rows are kept;
/// past it the oldest entry goes.
final class LockedThreads: Sendable {
    private let state = Mutex([UUID: ContinuousClock.Instant]())
    private let memory: Duration
    private let capacity: Int

    init(memory: Duration = .seconds(60), capacity: Int = 10_000) {
        self.memory = memory
        self.capacity = capacity
    }

    /// Threads kept.
    var count: Int { self.state.withLock { $0.count } }

    /// Whether one of `ids` was found locked within `memory` before `now`.
    func containsAny(of ids: some Sequence<UUID>, now: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            ids.contains { id in state[id].map { now - $0 < self.memory } ?? false }
        }
    }

    /// Records `ids` as found locked at `now`; one recorded already keeps the time it was first
    /// found (a thread two replicas keep busy must not be remembered for ever by skips).
    func found(locked ids: some Sequence<UUID>, now: ContinuousClock.Instant = .now) {
        self.state.withLock { state in
            for id in ids {
                if state[id] == nil, state.count >= self.capacity {
                    state = state.filter { now - $0.value < self.memory }
                    if state.count >= self.capacity, let oldest = state.min(by: { $0.value < $1.value }) {
                        state.removeValue(forKey: oldest.key)
                    }
                }
                if state[id].map({ now - $0 < self.memory }) != true { state[id] = now }
            }
        }
    }

    /// Records `ids` as locked by a batch of this replica: no longer held by another session.
    func found(free ids: some Sequence<UUID>) {
        self.state.withLock { state in
            for id in ids { state.removeValue(forKey: id) }
        }
    }
}
