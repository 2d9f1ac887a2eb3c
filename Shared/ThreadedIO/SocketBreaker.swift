import Glibc
import Synchronization

/// The socket of a C handle whose owner thread may block in a call with no time limit
/// (librabbitmq-c 0.11 sends a publish for as long as the broker does not read, which under a
/// resource alarm is for ever). Another thread ends such a call by shutting the socket down:
/// the owner's call fails, and it tears the handle down as for any lost connection.
///
/// It also ends a call that stalls: the owner marks when it starts working in the library
/// (``working(since:)``), and a watcher shuts the socket down under a call that has not returned
/// long after (``breakIfStalled(longerThan:now:)``). A broker frozen, or a link dropped without a
/// reset, left a thread sending into a full socket for ever, and one whose heartbeat deadline
/// had passed waiting in librabbitmq's `amqp_try_recv` without a time limit.
public final class SocketBreaker: Sendable {
    private struct State {
        var descriptor: Int32?
        var broken = false
        var workingSince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    public init() {}

    /// The owner thread: the socket once connected, nil before the handle closes it. (The lock
    /// keeps ``breakSocket()`` from shutting down a descriptor number already reused.) A socket
    /// set after ``breakSocket()`` is shut down at once: the owner is being stopped.
    public func set(_ descriptor: Int32?) {
        self.state.withLock { state in
            state.descriptor = descriptor
            if state.broken, let descriptor { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    /// Any thread: shuts the owner's socket down both ways, now and whenever it opens another.
    public func breakSocket() {
        self.state.withLock { state in
            state.broken = true
            if let descriptor = state.descriptor { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    /// The owner thread: it calls into the library from `since` on, or (nil) waits outside it.
    public func working(since: ContinuousClock.Instant?) {
        self.state.withLock { $0.workingSince = since }
    }

    /// Any thread: shuts the owner's socket down (this one, not the next) when it has been
    /// working in the library longer than `limit` in one go; true if it did. Each stall is broken
    /// once: the owner marks its next work again.
    public func breakIfStalled(longerThan limit: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        self.state.withLock { state in
            guard let since = state.workingSince, now - since > limit, let descriptor = state.descriptor else { return false }
            state.workingSince = nil
            _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR))
            return true
        }
    }
}
