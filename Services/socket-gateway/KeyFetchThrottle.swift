import MessengerContracts
import Synchronization

/// The fetches of auth's keys for tokens that name a key the gateway does not know: one at a
/// time, which every such token awaits, and at most one every `interval`, so a made-up key id
/// costs auth a fetch every few seconds at most.
///
/// A token that comes sooner after a successful fetch waits for the next one, made once the
/// interval has passed: a key that came into use just after a fetch (an auth replica started
/// with a new one, its announcement not here yet) is found by it. Until the fifty-seventh
/// session such a token was refused (401, which clients take for a logout) for the rest of the
/// interval. It is refused at once still when the last fetch was made for its key id and did
/// not bring it (a key auth dropped, a made-up id sent again), or when `maximumWaiting` tokens
/// already wait (made-up ids sent faster than that): those would hold their requests for the
/// interval for nothing. One that comes sooner after a failed fetch is answered `unavailable`
/// at once.
final class KeyFetchThrottle: Sendable {
    /// What a caller is to do with its token.
    enum Outcome: Equatable {
        /// The keys were fetched for it: verify the token again.
        case fetched
        /// Its key id is not among the keys as last fetched, and no fetch is to be awaited.
        case unknown
    }

    private let interval: Duration
    private let maximumWaiting: Int
    private let state = Mutex(State())

    private struct State {
        var running: Task<Void, any Error>?
        var waiting = 0
        var ended: ContinuousClock.Instant?
        var failed = false
        /// Key ids the fetch that ended last was made for and did not bring.
        var absent: Set<String> = []
    }

    /// How many key ids ``State/absent`` holds at most.
    private static let absentLimit = 1024

    init(interval: Duration, maximumWaiting: Int = 256) {
        self.interval = interval
        self.maximumWaiting = maximumWaiting
    }

    /// Awaits the fetch under way, or one made for this call, for a token naming `kid`; throws
    /// `unavailable` when it failed, or the last one failed within the interval.
    func fetch(for kid: String, _ fetch: @escaping @Sendable () async throws -> Void) async throws -> Outcome {
        enum Step { case await(Task<Void, any Error>), unknown, unavailable }
        let step = self.state.withLock { state -> Step in
            if let running = state.running {
                guard state.waiting < self.maximumWaiting else { return .unknown }
                state.waiting += 1
                return .await(running)
            }
            var start = ContinuousClock.now
            if let ended = state.ended, ended.duration(to: start) < self.interval {
                if state.failed { return .unavailable }
                if state.absent.contains(kid) { return .unknown }
                start = ended + self.interval
            }
            // Serves no request: the first caller's correlation id and deadline stay its own.
            let running = Task {
                do {
                    try await RequestScope.outside {
                        if start > .now { try await Task.sleep(until: start) }
                        try await fetch()
                    }
                    self.state.withLock { $0 = State(ended: .now) }
                } catch {
                    self.state.withLock { $0 = State(ended: .now, failed: true) }
                    throw error
                }
            }
            state.running = running
            state.waiting = 1
            return .await(running)
        }
        switch step {
        case .unknown:
            return .unknown
        case .await(let running):
            if (try? await running.value) != nil { return .fetched }
        case .unavailable:
            break
        }
        throw ServiceError.unavailable("the verification keys cannot be fetched; try again")
    }

    /// Notes that the keys fetched for a token naming `kid` did not have it: another token
    /// naming it is refused at once until the next fetch.
    func stillUnknown(_ kid: String) {
        self.state.withLock { state in
            guard state.running == nil, state.absent.count < Self.absentLimit else { return }
            state.absent.insert(kid)
        }
    }
}
