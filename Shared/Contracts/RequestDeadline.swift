/// When the caller of the request the current task serves stops waiting: the RPC's deadline
/// (`RPCContext.deadline`), bound by every service around each RPC it serves. A database call
/// made while it is bound waits for a pooled connection until then at most, where it would
/// otherwise wait the pool's whole lease limit and then do work no one waits for.
public enum RequestDeadline {
    @TaskLocal public static var current: ContinuousClock.Instant?
}

/// The task locals that belong to the request a task serves (``RequestCorrelation``,
/// ``RequestDeadline``), and how to start work that outlives it.
public enum RequestScope {
    /// Starts `body` in a task of its own that serves no request: a plain `Task` would carry
    /// the current request's correlation id and deadline into it, and its database calls would
    /// stop waiting for a connection at a deadline long past (a batch writer that a request
    /// started and that goes on after it; the forty-third session's review of its own diff).
    @discardableResult
    public static func detach(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        Task { await Self.outside(body) }
    }

    /// Runs `body` serving no request: with the correlation id and the deadline unbound.
    public static func outside<Result>(_ body: () async throws -> Result) async rethrows -> Result {
        try await RequestCorrelation.$id.withValue(nil) {
            try await RequestDeadline.$current.withValue(nil) { try await body() }
        }
    }
}
