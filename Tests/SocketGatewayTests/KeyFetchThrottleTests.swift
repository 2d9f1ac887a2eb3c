import MessengerContracts
import Synchronization
import Testing

@testable import SocketGateway

/// ``KeyFetchThrottle``: one fetch at a time, at most one every interval. Until the
/// fifty-seventh session a token naming a key that came into use just after a fetch was refused
/// for the rest of the interval.
@Suite("Fetches of auth's keys for unknown key ids", .timeLimit(.minutes(1)))
struct KeyFetchThrottleTests {
    /// Auth's key set as fetched: the key ids in `known`.
    /// The times are when each fetch began and ended.
    final class FakeAuth: Sendable {
        let fetches = Atomic(0)
        let failing = Atomic(false)
        let known = Mutex<Set<String>>([])
        let times = Mutex<[(began: ContinuousClock.Instant, ended: ContinuousClock.Instant)]>([])

        func fetch() async throws -> Set<String> {
            self.fetches.add(1, ordering: .relaxed)
            let began = ContinuousClock.now
            defer { self.times.withLock { $0.append((began, .now)) } }
            try await Task.sleep(for: .milliseconds(20))
            if self.failing.load(ordering: .relaxed) { throw ServiceError.unavailable("auth is away") }
            return self.known.withLock { $0 }
        }
    }

    @Test("a new key id soon after a successful fetch waits for the next one, which the calls meanwhile share")
    func soonAfterASuccessWaitsForTheNext() async throws {
        let throttle = KeyFetchThrottle(interval: .seconds(1))
        let auth = FakeAuth()
        #expect(try await throttle.fetch(for: "a", auth.fetch) == .fetched)
        #expect(auth.fetches.load(ordering: .relaxed) == 1)
        auth.known.withLock { $0 = ["b"] }  // a key that came into use just after the fetch
        let outcomes = try await withThrowingTaskGroup(of: KeyFetchThrottle.Outcome.self) { group in
            for _ in 0..<10 { group.addTask { try await throttle.fetch(for: "b", auth.fetch) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes == Array(repeating: .fetched, count: 10))
        #expect(auth.fetches.load(ordering: .relaxed) == 2)
        // Not before the interval after the first ended (a lower bound: a loaded machine only
        // makes it later).
        let times = auth.times.withLock { $0 }
        let gap = times[0].ended.duration(to: times[1].began)
        #expect(gap >= .seconds(1), "the second fetch began \(gap) after the first ended")
    }

    @Test("a key id the last fetch was made for and did not bring is unknown at once, until the next fetch")
    func absentAfterTheLastFetchIsUnknownAtOnce() async throws {
        let throttle = KeyFetchThrottle(interval: .seconds(4))  // a loaded machine once took over 1 s between two calls
        let auth = FakeAuth()
        #expect(try await throttle.fetch(for: "dropped", auth.fetch) == .fetched)
        // Answered without a fetch (`unknown` is never the outcome of one).
        #expect(try await throttle.fetch(for: "dropped", auth.fetch) == .unknown)
        #expect(auth.fetches.load(ordering: .relaxed) == 1)
        try await Task.sleep(for: .milliseconds(4100))
        #expect(try await throttle.fetch(for: "dropped", auth.fetch) == .fetched)
        #expect(auth.fetches.load(ordering: .relaxed) == 2)
    }

    @Test("past the tokens that may wait for one fetch, the others are unavailable at once (not unknown: not a logout)")
    func waitersAreBounded() async throws {
        let throttle = KeyFetchThrottle(interval: .seconds(1), maximumWaiting: 3)
        let auth = FakeAuth()
        #expect(try await throttle.fetch(for: "a", auth.fetch) == .fetched)
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for n in 0..<8 {
                group.addTask { (try? await throttle.fetch(for: "made-up-\(n)", auth.fetch)) == .fetched }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 3)
        #expect(auth.fetches.load(ordering: .relaxed) == 2)
    }

    /// The gateway's interval is a quarter of a second, its pause after a failure 5 s: a fetch
    /// fails at its RPC timeout while auth is away, and with the interval as the pause nearly
    /// every token would wait that long (a review in the fifty-eighth session).
    @Test("past the interval but within the pause after a failure, a call is unavailable at once, without a fetch")
    func pauseAfterAFailureOutlastsTheInterval() async throws {
        let throttle = KeyFetchThrottle(interval: .milliseconds(50), afterFailure: .seconds(5))
        let auth = FakeAuth()
        auth.failing.store(true, ordering: .relaxed)
        await #expect(throws: ServiceError.self) { try await throttle.fetch(for: "a", auth.fetch) }
        try await Task.sleep(for: .milliseconds(200))
        let refused = await #expect(throws: ServiceError.self) { try await throttle.fetch(for: "b", auth.fetch) }
        #expect(refused?.code == .unavailable)
        #expect(auth.fetches.load(ordering: .relaxed) == 1)
    }

    @Test("a call soon after a failed fetch is unavailable at once, without a fetch; later ones fetch again")
    func soonAfterAFailureIsUnavailable() async throws {
        let throttle = KeyFetchThrottle(interval: .seconds(4))  // a loaded machine once took over 1 s between two calls
        let auth = FakeAuth()
        auth.failing.store(true, ordering: .relaxed)
        await #expect(throws: ServiceError.self) { try await throttle.fetch(for: "a", auth.fetch) }
        let refused = await #expect(throws: ServiceError.self) { try await throttle.fetch(for: "b", auth.fetch) }
        #expect(refused?.code == .unavailable)
        #expect(auth.fetches.load(ordering: .relaxed) == 1)
        try await Task.sleep(for: .milliseconds(4100))
        auth.failing.store(false, ordering: .relaxed)
        #expect(try await throttle.fetch(for: "b", auth.fetch) == .fetched)
        #expect(auth.fetches.load(ordering: .relaxed) == 2)
    }
}
