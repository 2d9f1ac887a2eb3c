import MessengerContracts
import Synchronization

/// The fetches of auth's keys for tokens that name a key the gateway does not know: one at a
/// time, which every such token awaits, and at most one every `interval` (a quarter of a second in
/// the gateway), so a made-up key id costs auth a few fetches a second at most.
///
/// A token that comes sooner after a successful fetch waits for the next one, made once the
/// interval has passed: a key that came into use just after a fetch (an auth replica started
/// with a new one, its announcement not here yet) is found by it. Until the fifty-seventh
/// session such a token was refused (401, which clients take for a logout) for the rest of the
/// interval. A token whose key id the last fetch was asked for and did not bring (a key auth
/// dropped, a made-up id sent again) is refused at once for the rest of that interval: it
/// would wait for nothing. Past `maximumWaiting` tokens waiting for one fetch (made-up ids sent
/// faster than that), and within `afterFailure` of a failed fetch, the answer is `unavailable` at
/// once: the client tries again, and is not logged out. A fetch fails at its RPC timeout when
/// auth is away (its queue stays), so with the quarter-second interval as the pause after a
/// failure too, nearly every such token would wait that timeout (a review in the fifty-eighth
/// session): the gateway pauses 5 s after a failure.
final class KeyFetchThrottle: Sendable {
    /// What a caller is to do with its token.
    enum Outcome: Equatable {
        /// The keys were fetched for it: verify the token again.
        case fetched
        /// Its key id is not among the keys the last fetch brought, and no fetch is awaited.
        case unknown
    }

    private let interval: Duration
    private let afterFailure: Duration
    private let maximumWaiting: Int
    private let state = Mutex(State())

    private struct State {
        var running: Task<Void, any Error>?
        /// The key ids the callers waiting for `running` asked for.
        var asked: Set<String> = []
        var waiting = 0
        var ended: ContinuousClock.Instant?
        var failed = false
        /// The key ids the fetch that ended last was asked for and did not bring.
        var absent: Set<String> = []
    }

    /// - Parameter afterFailure: how long a failed fetch answers `unavailable` at once
    ///   (`interval` when nil).
    init(interval: Duration, afterFailure: Duration? = nil, maximumWaiting: Int = 256) {
        self.interval = interval
        self.afterFailure = afterFailure ?? interval
        self.maximumWaiting = maximumWaiting
    }

    /// Awaits the fetch under way, or one made for this call, for a token naming `kid`; throws
    /// `unavailable` when it failed, the last one failed within the interval, or too many wait.
    /// `fetch` returns the key ids known once it is done.
    func fetch(for kid: String, _ fetch: @escaping @Sendable () async throws -> Set<String>) async throws -> Outcome {
        enum Step { case await(Task<Void, any Error>), unknown, unavailable }
        let step = self.state.withLock { state -> Step in
            let now = ContinuousClock.now
            let recent = state.ended.map { $0.duration(to: now) < self.interval } ?? false
            if state.failed, let ended = state.ended, ended.duration(to: now) < self.afterFailure { return .unavailable }
            if recent, state.absent.contains(kid) { return .unknown }
            if let running = state.running {
                guard state.waiting < self.maximumWaiting else { return .unavailable }
                state.waiting += 1
                state.asked.insert(kid)
                return .await(running)
            }
            // Not before the interval after the last fetch ended (a failed one's pause is over).
            let start = state.ended.map { state.failed ? now : max(now, $0 + self.interval) } ?? now
            // Serves no request: the first caller's correlation id and deadline stay its own.
            let running = Task {
                do {
                    let known = try await RequestScope.outside {
                        if start > .now { try await Task.sleep(until: start) }
                        return try await fetch()
                    }
                    self.state.withLock { $0 = State(ended: .now, absent: $0.asked.subtracting(known)) }
                } catch {
                    self.state.withLock { $0 = State(ended: .now, failed: true) }
                    throw error
                }
            }
            state.running = running
            state.waiting = 1
            state.asked = [kid]
            return .await(running)
        }
        switch step {
        case .unknown:
            return .unknown
        case .await(let running):
            if (try? await running.value) != nil { return .fetched }
            throw ServiceError.unavailable("the verification keys cannot be fetched; try again")
        case .unavailable:
            throw ServiceError.unavailable("the verification keys cannot be fetched now; try again")
        }
    }
}
