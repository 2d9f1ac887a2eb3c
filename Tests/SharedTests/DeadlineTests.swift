import MessengerContracts
import MessengerServiceKit
import Synchronization
import Testing

@Suite("Waiting until a deadline")
struct DeadlineTests {
    @Test("an operation that ends in time gives its result, a nil one too")
    func inTime() async throws {
        let value = try await withDeadline(.now + .seconds(60), waitingFor: "a value") { 42 }
        #expect(value == 42)
        let none: Int? = try await withDeadline(.now + .seconds(60), waitingFor: "nothing") { nil }
        #expect(none == nil)
    }

    @Test("past the deadline the wait ends with unavailable and the operation is cancelled")
    func pastDeadline() async throws {
        let cancelled = Atomic(false)
        let started = ContinuousClock.now
        await #expect(throws: ServiceError.unavailable("a confirm did not come in time")) {
            try await withDeadline(.now + .milliseconds(50), waitingFor: "a confirm") {
                do {
                    try await LoopTimer.sleep(for: .seconds(600))
                } catch {
                    cancelled.store(true, ordering: .relaxed)
                    throw error
                }
            }
        }
        let wasCancelled = cancelled.load(ordering: .relaxed)
        #expect(wasCancelled)
        #expect(ContinuousClock.now - started < .seconds(60))
    }

    @Test("an operation's own error comes through")
    func operationError() async {
        await #expect(throws: ServiceError.conflict("taken")) {
            try await withDeadline(.now + .seconds(60), waitingFor: "a write") { throw ServiceError.conflict("taken") }
        }
    }
}

@Suite("Work that outlives its request")
struct RequestScopeTests {
    @Test("a task started with RequestScope.detach carries neither the request's correlation id nor its deadline")
    func detachedTaskServesNoRequest() async {
        let (correlation, deadline) = await RequestCorrelation.$id.withValue("request") {
            await RequestDeadline.$current.withValue(.now + .seconds(5)) {
                // A plain task would carry both (the batch writer's bug this guards against).
                let plain = await Task { (RequestCorrelation.id, RequestDeadline.current) }.value
                #expect(plain.0 == "request" && plain.1 != nil)
                let values = Mutex<(String?, ContinuousClock.Instant?)>(("unset", .now))
                await RequestScope.detach { values.withLock { $0 = (RequestCorrelation.id, RequestDeadline.current) } }.value
                return values.withLock { $0 }
            }
        }
        #expect(correlation == nil)
        #expect(deadline == nil)
    }
}
