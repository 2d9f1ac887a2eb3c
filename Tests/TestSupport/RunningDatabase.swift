import MessengerPostgres

/// Runs `database` (its pool and its watchdog) for the length of `body`, and stops it after,
/// whether `body` threw or not.
public func whileRunning<Result>(_ database: Database, _ body: () async throws -> Result) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await database.run() }
        defer { group.cancelAll() }
        return try await body()
    }
}
