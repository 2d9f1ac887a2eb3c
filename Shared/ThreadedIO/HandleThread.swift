import Foundation

/// Starts the one thread that owns a blocking C handle for its whole life.
///
/// Blocking C libraries (librabbitmq-c, hiredis) must never run on Swift's cooperative pool or on
/// a NIO event loop: each handle gets a thread of its own, and async callers talk to it through a
/// ``Mailbox`` and continuations.
public enum HandleThread {
    /// Runs `body` on a new, named thread and returns at once.
    public static func start(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }
}
