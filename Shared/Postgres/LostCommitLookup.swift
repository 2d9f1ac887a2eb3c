import PostgresNIO
import ThreadedIO

extension Database {
    /// Runs `look`, the look for a write whose `COMMIT` went unanswered (did it commit?), again
    /// while the database is unavailable, for at most `limit`, pausing 50 ms and then longer
    /// (at most 500 ms) between tries: the pool may hand out another connection the cut closed.
    /// The look's own error, or the last one, is thrown. Auth's refresh rotation, registration
    /// and password change, and messaging's commands run once share it.
    ///
    /// A look is tried twice at least, however long the first took: it may get a connection that
    /// was lost with the commit's before the pool knew, and its statement then waits for the
    /// watchdog (``Database``), which on a busy machine took longer than the whole limit (2.75 s
    /// once in the sixty-second session; the write, committed, was answered `unavailable`).
    public static func lookingUpLostCommit<Result>(
        for limit: Duration = .seconds(2), _ look: () async throws -> Result
    ) async throws -> Result {
        let end = ContinuousClock.now + limit
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))
        var tries = 0
        while true {
            let pause = backoff.next()
            tries += 1
            do {
                return try await look()
            } catch  where Database.isUnavailable(error) && (tries < 2 || ContinuousClock.now + pause < end) {
                try? await Task.sleep(for: pause)
            }
        }
    }

    /// Whether `error`, from ``transaction(logger:_:)``, leaves it unknown whether the
    /// transaction committed: its `COMMIT` failed as unavailable, or the watchdog failed the call
    /// on its closed connection (``DatabaseError/Code/connectionLost``: it may have been at its
    /// `COMMIT`). A failure to get a connection (``DatabaseError/Code/noConnection``), to begin,
    /// or of the body cannot have committed, so no look is worth its time for it (during an
    /// outage, every write would wait for one).
    public static func mayHaveCommitted(_ error: any Error) -> Bool {
        switch error {
        case let error as PostgresTransactionError:
            return error.commitError.map(Self.isUnavailable) ?? false
        case let error as DatabaseError:
            return error.code == .connectionLost
        default:
            return false
        }
    }
}
