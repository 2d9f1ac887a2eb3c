import MessengerContracts
import Synchronization
import Testing

@testable import SocketGateway

/// ``KeyFetchThrottle``: one fetch at a time, at most one every interval. Until the
/// fifty-seventh session a token naming a key that came into use just after a fetch was refused
/// for the rest of the interval.
@Suite("Fetches of auth's keys for unknown key ids", .timeLimit(.minutes(1)))
struct KeyFetchThrottleTests {
    final class FakeAuth: Sendable {
        let fetches = Atomic(0)
        let failing = Atomic(false)

        func fetch() async throws {
            self.fetches.add(1, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(20))
            if self.failing.load(ordering: .relaxed) { throw ServiceError.unavailable("auth is away") }
        }
    }

    @Test("a call soon after a successful fetch waits for the next one, which the calls meanwhile share")
    func soonAfterASuccessWaitsForTheNext() async throws {
        let throttle = KeyFetchThrottle(interval: .milliseconds(500))
        let auth = FakeAuth()
        try await throttle.fetch(auth.fetch)
        #expect(auth.fetches.load(ordering: .relaxed) == 1)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<10 { group.addTask { try await throttle.fetch(auth.fetch) } }
            try await group.waitForAll()
        }
        let waited = started.duration(to: .now)
        #expect(auth.fetches.load(ordering: .relaxed) == 2)
        #expect(waited >= .milliseconds(400), "the second fetch came after \(waited)")
    }

    @Test("a call soon after a failed fetch is unavailable at once, without a fetch; later ones fetch again")
    func soonAfterAFailureIsUnavailable() async throws {
        let throttle = KeyFetchThrottle(interval: .milliseconds(500))
        let auth = FakeAuth()
        auth.failing.store(true, ordering: .relaxed)
        await #expect(throws: ServiceError.self) { try await throttle.fetch(auth.fetch) }
        let started = ContinuousClock.now
        let refused = await #expect(throws: ServiceError.self) { try await throttle.fetch(auth.fetch) }
        #expect(refused?.code == .unavailable)
        #expect(started.duration(to: .now) < .milliseconds(300))
        #expect(auth.fetches.load(ordering: .relaxed) == 1)
        try await Task.sleep(for: .milliseconds(600))
        auth.failing.store(false, ordering: .relaxed)
        try await throttle.fetch(auth.fetch)
        #expect(auth.fetches.load(ordering: .relaxed) == 2)
    }
}
