import Foundation
import Glibc

/// The one thread that owns a blocking C handle for its whole life, and the mailbox async
/// callers reach it through.
///
/// Blocking C libraries (librabbitmq-c, hiredis) must never run on Swift's cooperative pool or
/// on a NIO event loop: each handle gets a thread of its own, and callers talk to it through a
/// ``Mailbox`` and ``Promise``s.
public final class HandleThread<Command: Sendable>: Sendable {
    public let mailbox = Mailbox<Command>()
    private let ended = Gate()
    private let shutdownCommand: @Sendable (Promise<Void>) -> Command

    /// Starts `body` on a new, named thread. `body` owns the handle and returns when it has
    /// handled the command `shutdownCommand` makes.
    public init(
        name: String, shutdownCommand: @escaping @Sendable (Promise<Void>) -> Command,
        body: @escaping @Sendable (Mailbox<Command>) -> Void
    ) {
        self.shutdownCommand = shutdownCommand
        let mailbox = self.mailbox
        let ended = self.ended
        let thread = Thread {
            Self.nameKernelThread(name)
            body(mailbox)
            ended.open()
        }
        thread.name = name
        // librabbitmq-c decodes a message's header tables by recursion, with no bound on their
        // depth: one frame can nest about 26,000 levels, megabytes of C stack. Virtual memory,
        // taken only as it is used.
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Names the calling thread for `top -H`, perf and /proc (Linux keeps 15 bytes). Foundation's
    /// `Thread.name` does not reach the kernel here, so the thread would carry its creator's name.
    /// `pthread_setname_np` is not visible to Swift without `_GNU_SOURCE`; the file is.
    private static func nameKernelThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        defer { _ = close(fd) }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    /// Asks the owner to shut down and waits until its thread has ended. Safe to call more than
    /// once, and concurrently.
    public func stop() async {
        let promise = Promise<Void>()
        if self.mailbox.send(self.shutdownCommand(promise)) {
            try? await promise.value()
        }
        try? await self.ended.wait()
    }
}
