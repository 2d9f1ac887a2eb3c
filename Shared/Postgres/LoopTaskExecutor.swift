import NIOCore
import NIOPosix
@_spi(ExperimentalScheduling) import _Concurrency

/// A task executor on NIO's singleton event loops whose delayed jobs (`Task.sleep`,
/// `ContinuousClock.sleep`) wait on a loop's timer.
///
/// NIO's loops already run Swift's global jobs (``ServiceMain``), but NIO takes over only the
/// global queue: since Swift 6.2 a sleep goes to the default executor's own timers, which are
/// Dispatch's. Each one costs a Dispatch manager thread's wake-up to arm it and, at its deadline
/// (even when the sleep was cancelled long before), a Dispatch worker's wake-up that hands the job
/// back to a loop. postgres-nio's pool arms an idle timer (a 60-second sleep) every time a
/// connection comes back and cancels it at the next lease, so under load those wake-ups were
/// about a tenth of messaging's CPU (docs/performance.md, fifty-sixth session). Tasks that prefer
/// this executor, and their child tasks, sleep on the loop instead: armed and fired without
/// waking another thread.
///
/// Scheduling is Swift's `SchedulingExecutor`, still an experimental interface
/// (`@_spi(ExperimentalScheduling)`, Swift 6.3); a toolchain that changes it fails to compile
/// here, not at run time.
final class LoopTaskExecutor: TaskExecutor, SchedulingExecutor {
    /// On the process's singleton group, whose loops also run Swift's global jobs.
    static let shared = LoopTaskExecutor(loops: MultiThreadedEventLoopGroup.singleton)

    private let loops: any EventLoopGroup

    init(loops: any EventLoopGroup) {
        self.loops = loops
    }

    func enqueue(_ job: consuming ExecutorJob) {
        self.runSoon(UnownedJob(job))
    }

    /// Runs `job` in a loop's next turn: `any()` is the loop this runs on when called from one of
    /// the group's loops.
    private func runSoon(_ job: UnownedJob) {
        self.loops.any().execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    func enqueue<C: Clock>(
        _ job: consuming ExecutorJob, after delay: C.Duration, tolerance: C.Duration?, clock: C
    ) {
        let job = UnownedJob(job)
        guard let delay = delay as? Duration else {
            // A clock that does not measure in `Duration` (none of the standard library's):
            // its own sleep, in a task that prefers no executor, then the job.
            Task.detached {
                try? await clock.sleep(for: delay)
                self.runSoon(job)
            }
            return
        }
        self.loops.any().scheduleTask(in: TimeAmount(delay)) {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }

    func enqueue<C: Clock>(
        _ job: consuming ExecutorJob, at instant: C.Instant, tolerance: C.Duration?, clock: C
    ) {
        self.enqueue(job, after: clock.now.duration(to: instant), tolerance: tolerance, clock: clock)
    }
}
