import Glibc
import Synchronization

/// A queue of commands for a thread that owns a blocking C handle.
///
/// Any thread may `send`; only the owning thread calls `drain` and `wait`. The owner sleeps in
/// `poll(2)` on a wake-up descriptor and, optionally, its handle's socket, so a command sent while
/// it sleeps wakes it at once, and a command sent while it is busy costs no system call.
public final class Mailbox<Command: Sendable>: Sendable {
    private struct State {
        var commands: [Command] = []
        var sleeping = false
        var closed = false
    }

    private let state = Mutex(State())
    /// A non-blocking pipe: the owner polls the read end, senders write a byte to the other.
    private let wakeFD: Int32
    private let wakeWriteFD: Int32

    /// What woke the owner up.
    public struct Readiness: Sendable {
        /// The extra descriptor passed to `wait` is readable (or in error).
        public var socketReadable: Bool
    }

    public init() {
        var fds: [Int32] = [-1, -1]
        let status = pipe(&fds)
        precondition(status == 0, "pipe failed: errno \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.wakeFD = fds[0]
        self.wakeWriteFD = fds[1]
    }

    deinit {
        _ = Glibc.close(self.wakeFD)
        _ = Glibc.close(self.wakeWriteFD)
    }

    /// Queues a command and wakes the owner if it sleeps. Returns false, queuing nothing, once the
    /// owner has closed the mailbox.
    @discardableResult
    public func send(_ command: Command) -> Bool {
        self.enqueue { $0.append(command) }
    }

    /// Queues `commands` together, so the owner takes them in the same ``drain()``, and wakes it
    /// if it sleeps. Returns false, queuing nothing, once the owner has closed the mailbox.
    @discardableResult
    public func send(contentsOf commands: [Command]) -> Bool {
        self.enqueue { $0.append(contentsOf: commands) }
    }

    private func enqueue(_ add: (inout [Command]) -> Void) -> Bool {
        let (accepted, mustWake) = self.state.withLock { state in
            guard !state.closed else { return (false, false) }
            add(&state.commands)
            defer { state.sleeping = false }
            return (true, state.sleeping)
        }
        guard accepted else { return false }
        if mustWake {
            var one: UInt8 = 1
            _ = write(self.wakeWriteFD, &one, 1)
        }
        return true
    }

    /// Refuses every later command and returns those still queued. Owner only, once it stops.
    public func close() -> [Command] {
        self.state.withLock { state in
            state.closed = true
            defer { state.commands.removeAll() }
            return state.commands
        }
    }

    /// Takes every queued command, oldest first. Owner only.
    public func drain() -> [Command] {
        self.state.withLock { state in
            let commands = state.commands
            state.commands.removeAll(keepingCapacity: true)
            return commands
        }
    }

    /// Sleeps until a command arrives, `socket` becomes readable, or `timeoutMilliseconds`
    /// passes. Returns at once when commands are already queued. Owner only.
    @discardableResult
    public func wait(socket: Int32? = nil, timeoutMilliseconds: Int32) -> Readiness {
        let mayBlock = self.state.withLock { state in
            if state.commands.isEmpty {
                state.sleeping = true
                return true
            }
            return false
        }
        guard mayBlock else { return Readiness(socketReadable: false) }

        var fds = [pollfd(fd: self.wakeFD, events: Int16(POLLIN), revents: 0)]
        if let socket, socket >= 0 {
            fds.append(pollfd(fd: socket, events: Int16(POLLIN), revents: 0))
        }
        let ready = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        self.state.withLock { $0.sleeping = false }
        if ready > 0, fds[0].revents != 0 {
            var buffer = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
            _ = withUnsafeMutableBytes(of: &buffer) { read(self.wakeFD, $0.baseAddress, $0.count) }
        }
        let socketReadable = ready > 0 && fds.count > 1 && fds[1].revents != 0
        return Readiness(socketReadable: socketReadable)
    }
}
