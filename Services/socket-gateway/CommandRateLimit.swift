import Synchronization

/// A token bucket that lends: `burst` commands at once, then `rate` a second, and a command
/// past that takes a token from the future and waits for it. Pure; times are seconds on a
/// monotonic clock.
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
        self.tokens = min(Double(burst), self.tokens + max(0, now - self.updated) * rate) - 1
        self.updated = now
        return self.tokens >= 0 ? 0 : -self.tokens / rate
    }

    /// Full again by `now`: forgetting it changes nothing.
    func isFull(now: Double, rate: Double, burst: Int) -> Bool {
        self.tokens + max(0, now - self.updated) * rate >= Double(burst)
    }
}

/// How many socket commands one user may have run on this gateway: `SOCKET_COMMAND_RATE` a
/// second with bursts of `SOCKET_COMMAND_BURST` (a rate of 0 is no limit), over all the user's
/// sockets here. A command past it waits for its turn, then runs: the contract has every
/// command run, those sent without an ack callback too, in the order sent. While a socket's
/// command waits, its later ones queue behind it, and past 256 the connection stops reading, so
/// a client sending faster is slowed down by TCP, not dropped. `ack_events` is not counted: it
/// is cumulative, cheap, and what lets the user's retries stop.
///
/// Without it one user could keep the backend busy for everyone: an outside tester sent 1,800
/// messages in 3 s to a group of 50 (90,000 events), and another pair's messages took 4 to 6 s
/// instead of 19 ms while the system worked through them.
final class CommandRateLimit: Sendable {
    struct Settings: Sendable, Hashable {
        /// Commands a second, per user; 0 turns the limit off.
        var rate: Int
        var burst: Int
        var isOn: Bool { self.rate > 0 }
    }

    static let uncounted: Set<String> = ["ack_events"]

    let settings: Settings
    private let state = Mutex(State())
    private let start = ContinuousClock.now

    private struct State {
        var buckets: [String: TokenBucket] = [:]
        var calls = 0
    }

    init(settings: Settings) {
        self.settings = settings
    }

    /// How long `user`'s `event` must wait for its turn (zero when it may run now). The turn
    /// is taken: the caller waits that long, then runs the command.
    func delay(user: String, event: String) -> Duration {
        guard self.settings.isOn, !Self.uncounted.contains(event) else { return .zero }
        let elapsed = ContinuousClock.now - self.start
        let now = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rate = Double(self.settings.rate)
        let burst = self.settings.burst
        let wait = self.state.withLock { state -> Double in
            // Users who went quiet are forgotten now and then (their buckets are full again):
            // the table holds the users active lately, not everyone ever seen.
            state.calls += 1
            if state.calls.isMultiple(of: 4096) {
                state.buckets = state.buckets.filter { !$0.value.isFull(now: now, rate: rate, burst: burst) }
            }
            var bucket = state.buckets[user] ?? TokenBucket(burst: burst, now: now)
            let wait = bucket.take(now: now, rate: rate, burst: burst)
            state.buckets[user] = bucket
            return wait
        }
        return .nanoseconds(Int64(wait * 1e9))
    }
}
