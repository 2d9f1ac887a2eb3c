import NIOCore
import NIOPosix

/// Waits on an event loop's own timer. `Task.sleep` does not: with NIO's loops as Swift's
/// global executor its timers still run on Dispatch's threads, which then hand the task back to
/// a loop, two thread wake-ups per wait. The load tool waits once per message it sends, so that
/// was about a quarter of its CPU at 400 msg/s (`perf`, twelfth session).
public enum LoopTimer {
    /// Returns at `deadline` (at once when it has passed); throws when the task is cancelled.
    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        let delay = deadline - .now
        guard delay > .zero else { return }
        let (seconds, attoseconds) = delay.components
        // The loop this task runs on, when it runs on one of the singleton group's loops.
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let scheduled = loop.scheduleTask(in: .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)) {}
        try await withTaskCancellationHandler {
            try await scheduled.futureResult.get()
        } onCancel: {
            scheduled.cancel()
        }
    }
}
