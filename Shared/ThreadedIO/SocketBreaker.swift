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
///
/// It shuts down a duplicate of the socket's descriptor, its own: the library closes its
/// descriptor by itself on some failures (a heartbeat or RPC timeout, a refused login), and
/// until the fiftieth session the breaker, which held that number until the owner cleared it,
/// could shut down whatever socket the process opened next under the same number (a client's
/// websocket, a database connection; a review of the C layers).
public final class SocketBreaker: Sendable {
    private struct State {
        /// The duplicate of the owner's socket, closed when the owner clears or replaces it.
        var descriptor: Int32?
        var broken = false
        var workingSince: ContinuousClock.Instant?

        mutating func replace(with descriptor: Int32?) {
            if let old = self.descriptor { _ = Glibc.close(old) }
            self.descriptor = descriptor
        }

        func shutDown() {
            if let descriptor = self.descriptor { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    private let state = Mutex(State())

    public init() {}

    deinit {
        self.state.withLock { $0.replace(with: nil) }
    }

    /// The owner thread: the socket once connected, nil when the handle is torn down. A socket
    /// set after ``breakSocket()`` is shut down at once: the owner is being stopped. (When the
    /// descriptor cannot be duplicated, there is nothing to break it with: the owner's own
    /// timeouts are all it has.)
    public func set(_ descriptor: Int32?) {
        let duplicate = descriptor.flatMap { descriptor in
            let duplicate = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
            return duplicate >= 0 ? duplicate : nil
        }
        self.state.withLock { state in
            state.replace(with: duplicate)
            if state.broken { state.shutDown() }
        }
    }

    /// Any thread: shuts the owner's socket down both ways, now and whenever it opens another.
    public func breakSocket() {
        self.state.withLock { state in
            state.broken = true
            state.shutDown()
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
            guard let since = state.workingSince, now - since > limit, state.descriptor != nil else { return false }
            state.workingSince = nil
            state.shutDown()
            return true
        }
    }
}
