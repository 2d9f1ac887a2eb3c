import MessengerServiceKit
import Testing

@Suite("The event-loop timer")
struct LoopTimerTests {
    @Test("returns at its deadline, not before")
    func notBeforeDeadline() async throws {
        let deadline = ContinuousClock.now + .milliseconds(20)
        try await LoopTimer.sleep(until: deadline)
        #expect(ContinuousClock.now >= deadline)
    }

    @Test("a deadline that has passed returns at once")
    func pastDeadline() async throws {
        try await LoopTimer.sleep(until: .now - .seconds(1))
    }

    @Test("cancelling the waiting task ends the wait with an error")
    func cancelled() async {
        let waiting = Task { try await LoopTimer.sleep(until: .now + .seconds(600)) }
        waiting.cancel()
        await #expect(throws: (any Error).self) { try await waiting.value }
    }
}
