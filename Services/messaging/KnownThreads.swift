import Foundation
import Synchronization

/// What this replica last wrote to each thread: its members, its last `seq` and the time of its
/// last message. It lets a `create_message` batch skip the thread locks (see
/// ``Conversations/createMessages(_:)``).
///
/// A thread's members never change once it exists, so they are facts. The last seq and time are
/// hints: another replica may have written since. A batch planned from a stale hint tries a
/// `(thread_id, seq)` that is taken, the unique index refuses it, and the batch is planned again
/// under the locks. At most `capacity` threads, with at most `memberCapacity` members in all,
/// are kept; past either an arbitrary one is dropped. (Until the forty-second session only
/// threads were counted: 100,000 groups of 256 members, which any user can make, held about
/// 400 MB per replica.)
final class KnownThreads: Sendable {
    /// One thread as this replica last wrote it.
    struct Thread: Sendable {
        /// The owner first, then by id.
        var members: [UUID]
        var lastSeq: Int64
        var lastActivity: Date
    }

    private let state = Mutex((threads: [UUID: Thread](), members: 0))
    private let capacity: Int
    private let memberCapacity: Int

    /// The default member capacity, 1,000,000 UUIDs, is 16 MB.
    init(capacity: Int = 100_000, memberCapacity: Int = 1_000_000) {
        self.capacity = capacity
        self.memberCapacity = memberCapacity
    }

    /// Threads kept, and their members in all.
    var counts: (threads: Int, members: Int) {
        self.state.withLock { ($0.threads.count, $0.members) }
    }

    /// Every one of `ids`, or nil when one of them is not known.
    func lookup(_ ids: some Sequence<UUID>) -> [UUID: Thread]? {
        self.state.withLock { state in
            var found: [UUID: Thread] = [:]
            for id in ids {
                guard let thread = state.threads[id] else { return nil }
                found[id] = thread
            }
            return found
        }
    }

    /// Records what a committed batch wrote. A seq lower than the one known is ignored: two
    /// batches of this replica may report out of order.
    func wrote(_ written: [UUID: Thread]) {
        self.state.withLock { state in
            for (id, thread) in written {
                if let known = state.threads[id] {
                    if known.lastSeq >= thread.lastSeq { continue }
                    state.members += thread.members.count - known.members.count
                    state.threads[id] = thread
                    continue
                }
                guard thread.members.count <= self.memberCapacity else { continue }
                while !state.threads.isEmpty,
                    state.threads.count >= self.capacity || state.members + thread.members.count > self.memberCapacity
                {
                    state.members -= state.threads.remove(at: state.threads.startIndex).value.members.count
                }
                state.threads[id] = thread
                state.members += thread.members.count
            }
        }
    }

    /// Drops `ids`: a batch on them failed, so what they hold now is unknown.
    func forget(_ ids: some Sequence<UUID>) {
        self.state.withLock { state in
            for id in ids {
                if let known = state.threads.removeValue(forKey: id) { state.members -= known.members.count }
            }
        }
    }
}
