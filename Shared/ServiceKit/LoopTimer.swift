import NIOCore
import NIOPosix

/// Waits on an event loop's own timer: for waits that repeat many times a second (a sweep, a
/// batch window, a load generator's pacing).
///
/// `Task.sleep` goes through Dispatch's timers even with NIO's loops as Swift's global executor:
/// at the deadline a Dispatch thread wakes, then a worker, which hands the task back to a loop.
/// Three thread wake-ups per wait were 60 % of an idle gateway's CPU (a 20 Hz sweep) and a
/// quarter of the load tool's (a wait per message sent).
public enum LoopTimer {
    /// Returns at `deadline` (at once when it has passed); throws when the task is cancelled.
    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await Self.sleep(for: deadline - .now)
    }

    /// Returns after `duration` (at once when it is not positive); throws when the task is
    /// cancelled.
    public static func sleep(for duration: Duration) async throws {
        guard duration > .zero else { return try Task.checkCancellation() }
        // The loop this task runs on, when it runs on one of the singleton group's loops.
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let scheduled = loop.scheduleTask(in: TimeAmount(duration)) {}
        try await withTaskCancellationHandler {
            try await scheduled.futureResult.get()
        } onCancel: {
            scheduled.cancel()
        }
    }
}
