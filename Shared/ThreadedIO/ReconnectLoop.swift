/// The life of a handle thread's connection: connect and serve; when that fails, report the
/// failure (with how many in a row), wait out the backoff, and try again, until told to stop.
/// `connectAndServe` calls its argument once connected, which starts the backoff and the
/// failure count over. Runs on the handle thread; every closure is called there.
public enum ReconnectLoop {
    /// Whether a failure to (re)connect deserves a warning: the first of an outage, then every
    /// 30th (a minute or two of retries), so a server that stays down is neither news every few
    /// seconds nor forgotten after its first line.
    public static func isWorthAWarning(failuresInARow failures: Int) -> Bool {
        failures == 1 || failures.isMultiple(of: 30)
    }

    public static func run(
        backoff: Backoff, isStopping: () -> Bool, connectAndServe: (_ connected: () -> Void) throws -> Void,
        lost: (_ error: any Error, _ failuresInARow: Int) -> Void, wait: (Duration) -> Void
    ) {
        var backoff = backoff
        var failures = 0
        while !isStopping() {
            do {
                try connectAndServe {
                    backoff.reset()
                    failures = 0
                }
                // Serving returns only when asked to stop.
                return
            } catch {
                failures += 1
                lost(error, failures)
                if !isStopping() { wait(backoff.next()) }
            }
        }
    }
}
