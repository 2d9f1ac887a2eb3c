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
    static let uncounted: Set<String> = ["ack_events"]

    private let buckets: UserTokenBuckets

    init(settings: UserRate) {
        self.buckets = UserTokenBuckets(settings)
    }

    /// How long `user`'s `event` must wait for its turn (zero when it may run now). The turn
    /// is taken: the caller waits that long, then runs the command.
    func delay(user: String, event: String) -> Duration {
        guard !Self.uncounted.contains(event) else { return .zero }
        return self.buckets.take(user: user, lend: true)
    }
}
