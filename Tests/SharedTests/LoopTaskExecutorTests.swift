import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing

@testable import MessengerPostgres

@Suite("The loop task executor")
struct LoopTaskExecutorTests {
    /// Runs `sleep` in a task that prefers an executor on a test loop whose clock moves only when
    /// told, moves that clock an hour at a time, and returns whether the sleep ended within
    /// about two seconds of real time: it can only if it waited on the loop's timer.
    private func endsOnTheLoopsClock(_ sleep: @escaping @Sendable () async throws -> Void) async throws -> Bool {
        let loop = NIOAsyncTestingEventLoop()
        let executor = LoopTaskExecutor(loops: loop)
        let state = Mutex<(sleeping: Bool, ended: Bool)>((false, false))
        let task = Task {
            try await withTaskExecutorPreference(executor) {
                state.withLock { $0.sleeping = true }
                try await sleep()
                state.withLock { $0.ended = true }
            }
        }
        var ended = false
        for _ in 0..<200 {
            if state.withLock({ $0.sleeping && !$0.ended }) { await loop.advanceTime(by: .hours(1)) }
            ended = state.withLock { $0.ended }
            if ended { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        // Whatever happened, no timer is left on the test loop (freed with one, it traps).
        task.cancel()
        await loop.advanceTime(by: .hours(24 * 365))
        _ = await task.result
        await loop.shutdownGracefully()
        return ended
    }

    @Test("Task.sleep waits on the preferred loop's timer")
    func taskSleep() async throws {
        #expect(try await self.endsOnTheLoopsClock { try await Task.sleep(for: .seconds(3_600)) })
    }

    @Test("so does a clock's sleep in a child task (postgres-nio's pool timers)")
    func childTaskClockSleep() async throws {
        #expect(
            try await self.endsOnTheLoopsClock {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await ContinuousClock().sleep(for: .seconds(3_600)) }
                    try await group.waitForAll()
                }
            })
    }

    @Test("a sleep on the singleton's loops lasts its duration and resumes on a loop")
    func realLoops() async throws {
        let started = ContinuousClock.now
        let onLoop = try await withTaskExecutorPreference(LoopTaskExecutor.shared) {
            try await Task.sleep(for: .milliseconds(30))
            return MultiThreadedEventLoopGroup.currentEventLoop != nil
        }
        #expect(ContinuousClock.now - started >= .milliseconds(30))
        #expect(onLoop)
    }

    @Test("a sleep cancelled while it waits on the loop ends at once with CancellationError")
    func cancelled() async throws {
        let asleep = Mutex(false)
        let sleeping = Task {
            try await withTaskExecutorPreference(LoopTaskExecutor.shared) {
                asleep.withLock { $0 = true }
                try await Task.sleep(for: .seconds(600))
            }
        }
        while !asleep.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(50))
        let cancelledAt = ContinuousClock.now
        sleeping.cancel()
        await #expect(throws: CancellationError.self) { try await sleeping.value }
        #expect(ContinuousClock.now - cancelledAt < .seconds(10))
    }
}
