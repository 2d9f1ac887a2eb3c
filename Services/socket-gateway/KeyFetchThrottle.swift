import MessengerContracts
import Synchronization

/// The fetches of auth's keys for tokens that name a key the gateway does not know: one at a
/// time, which every such token awaits, and at most one every `interval`, so a made-up key id
/// costs auth a fetch every few seconds at most. A token that comes sooner after a successful
/// fetch waits for the next one, made once the interval has passed: a key that came into use
/// just after a fetch (an auth replica started with a new one, its announcement not here yet)
/// is found by it. Until the fifty-seventh session such a token was refused (401, which
/// clients take for a logout) for the rest of the interval. One that comes sooner after a
/// failed fetch is answered `unavailable` at once.
final class KeyFetchThrottle: Sendable {
    private let interval: Duration
    private let state = Mutex<(running: Task<Void, any Error>?, ended: ContinuousClock.Instant?, failed: Bool)>(
        (nil, nil, false))

    init(interval: Duration) {
        self.interval = interval
    }

    /// Returns once a fetch made for this call, or the one under way, succeeded; throws
    /// `unavailable` when it failed, or the last one failed within the interval.
    func fetch(_ fetch: @escaping @Sendable () async throws -> Void) async throws {
        let running = self.state.withLock { state -> Task<Void, any Error>? in
            if let running = state.running { return running }
            var start = ContinuousClock.now
            if let ended = state.ended, ended.duration(to: start) < self.interval {
                if state.failed { return nil }
                start = ended + self.interval
            }
            // Serves no request: the first caller's correlation id and deadline stay its own.
            let running = Task {
                do {
                    try await RequestScope.outside {
                        if start > .now { try await Task.sleep(until: start) }
                        try await fetch()
                    }
                    self.state.withLock { $0 = (nil, .now, false) }
                } catch {
                    self.state.withLock { $0 = (nil, .now, true) }
                    throw error
                }
            }
            state.running = running
            return running
        }
        guard let running, (try? await running.value) != nil else {
            throw ServiceError.unavailable("the verification keys cannot be fetched; try again")
        }
    }
}
