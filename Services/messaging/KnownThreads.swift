import Foundation
import Synchronization

/// What this replica last wrote to each thread: its members, its last `seq` and the time of its
/// last message. It lets a `create_message` batch skip the thread locks (see
/// ``Conversations/createMessages(_:)``).
///
/// A thread's members never change once it exists, so they are facts. The last seq and time are
/// hints: another replica may have written since. A batch planned from a stale hint tries a
/// `(thread_id, seq)` that is taken, the unique index refuses it, and the batch is planned again
/// under the locks. At most `capacity` threads are kept; past that an arbitrary one is dropped.
final class KnownThreads: Sendable {
    /// One thread as this replica last wrote it.
    struct Thread: Sendable {
        /// The owner first, then by id.
        var members: [UUID]
        var lastSeq: Int64
        var lastActivity: Date
    }

    private let threads = Mutex([UUID: Thread]())
    private let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// Every one of `ids`, or nil when one of them is not known.
    func lookup(_ ids: some Sequence<UUID>) -> [UUID: Thread]? {
        self.threads.withLock { threads in
            var found: [UUID: Thread] = [:]
            for id in ids {
                guard let thread = threads[id] else { return nil }
                found[id] = thread
            }
            return found
        }
    }

    /// Records what a committed batch wrote. A seq lower than the one known is ignored: two
    /// batches of this replica may report out of order.
    func wrote(_ written: [UUID: Thread]) {
        self.threads.withLock { threads in
            for (id, thread) in written {
                if let known = threads[id], known.lastSeq >= thread.lastSeq { continue }
                if threads[id] == nil, threads.count >= self.capacity { threads.remove(at: threads.startIndex) }
                threads[id] = thread
            }
        }
    }

    /// Drops `ids`: a batch on them failed, so what they hold now is unknown.
    func forget(_ ids: some Sequence<UUID>) {
        self.threads.withLock { threads in
            for id in ids { threads[id] = nil }
        }
    }
}
