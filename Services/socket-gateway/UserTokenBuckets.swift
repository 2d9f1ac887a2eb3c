import Synchronization

/// A token bucket: `burst` tokens at once, then `rate` a second. ``take(now:rate:burst:)``
/// lends (a token past the burst is taken from the future and waited for);
/// ``takeIfInHand(now:rate:burst:)`` does not. Pure; times are seconds on a monotonic clock.
struct TokenBucket: Sendable, Hashable {
    /// Tokens in hand; below zero, the ones already promised to waiting commands.
    var tokens: Double
    var updated: Double

    init(burst: Int, now: Double) {
        self.tokens = Double(burst)
        self.updated = now
    }

    /// Takes one token: the seconds to wait until it is there (0 when it is now).
    mutating func take(now: Double, rate: Double, burst: Int) -> Double {
        self.refill(now: now, rate: rate, burst: burst)
        self.tokens -= 1
        return self.tokens >= 0 ? 0 : -self.tokens / rate
    }

    /// Takes one token if one is in hand (returns 0); otherwise takes nothing and returns the
    /// seconds until one will be.
    mutating func takeIfInHand(now: Double, rate: Double, burst: Int) -> Double {
        self.refill(now: now, rate: rate, burst: burst)
        guard self.tokens >= 1 else { return (1 - self.tokens) / rate }
        self.tokens -= 1
        return 0
    }

    /// Full again by `now`: forgetting it changes nothing.
    func isFull(now: Double, rate: Double, burst: Int) -> Bool {
        self.tokens + max(0, now - self.updated) * rate >= Double(burst)
    }

    private mutating func refill(now: Double, rate: Double, burst: Int) {
        self.tokens = min(Double(burst), self.tokens + max(0, now - self.updated) * rate)
        self.updated = now
    }
}

/// A rate per user: `rate` a second with bursts of `burst`; a rate of 0 is no limit.
struct UserRate: Sendable, Hashable {
    var rate: Int
    var burst: Int
    var isOn: Bool { self.rate > 0 }
}

/// One ``TokenBucket`` per user, behind a lock. Users who went quiet are forgotten now and
/// then (their buckets are full again): the table holds the users active lately, not everyone
/// ever seen.
final class UserTokenBuckets: Sendable {
    let limit: UserRate
    private let state = Mutex(State())
    private let start = ContinuousClock.now

    private struct State {
        var buckets: [String: TokenBucket] = [:]
        var calls = 0
    }

    init(_ limit: UserRate) {
        self.limit = limit
    }

    /// Takes one of `user`'s tokens, lending if `lend`: the wait until it is there (zero when
    /// it is now). Without lending, a wait above zero means that nothing was taken.
    func take(user: String, lend: Bool) -> Duration {
        guard self.limit.isOn else { return .zero }
        let elapsed = ContinuousClock.now - self.start
        let now = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let (rate, burst) = (Double(self.limit.rate), self.limit.burst)
        let wait = self.state.withLock { state -> Double in
            state.calls += 1
            if state.calls.isMultiple(of: 4096) {
                state.buckets = state.buckets.filter { !$0.value.isFull(now: now, rate: rate, burst: burst) }
            }
            var bucket = state.buckets[user] ?? TokenBucket(burst: burst, now: now)
            let wait =
                lend
                ? bucket.take(now: now, rate: rate, burst: burst) : bucket.takeIfInHand(now: now, rate: rate, burst: burst)
            state.buckets[user] = bucket
            return wait
        }
        return .nanoseconds(Int64(wait * 1e9))
    }
}
