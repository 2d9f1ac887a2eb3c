import ThreadedIO

extension Database {
    /// Runs `look`, the look for a write whose `COMMIT` went unanswered (did it commit?), again
    /// while the database is unavailable, for at most `limit`, pausing 50 ms and then longer
    /// (at most 500 ms) between tries: the pool may hand out another connection the cut closed.
    /// The look's own error, or the last one, is thrown. Auth's refresh rotation, registration
    /// and password change, and messaging's commands run once share it.
    public static func lookingUpLostCommit<Result>(
        for limit: Duration = .seconds(2), _ look: () async throws -> Result
    ) async throws -> Result {
        let end = ContinuousClock.now + limit
        var backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(500))
        while true {
            let pause = backoff.next()
            do {
                return try await look()
            } catch  where Database.isUnavailable(error) && ContinuousClock.now + pause < end {
                try? await Task.sleep(for: pause)
            }
        }
    }
}
