import Glibc
import Synchronization

/// The socket of a C handle whose owner thread may block in a call with no time limit
/// (librabbitmq-c 0.11 sends a publish for as long as the broker does not read, which under a
/// resource alarm is for ever). Another thread ends such a call by shutting the socket down:
/// the owner's call fails, and it tears the handle down as for any lost connection.
public final class SocketBreaker: Sendable {
    private let state = Mutex<(descriptor: Int32?, broken: Bool)>((nil, false))

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
}
