import MessengerContracts

/// Waits for `operation` until `deadline` at most. Past it, the operation's task is cancelled and
/// the wait ends with `unavailable`: for a wait that holds something scarce (a transaction's
/// connection) on a dependency that can stall for as long as it is down (the broker's confirms
/// during an outage). The operation must end when cancelled, as awaiting a confirm or a reply
/// does; what it started (a publish) may still complete after the wait was given up.
public func withDeadline<Result: Sendable>(
    _ deadline: ContinuousClock.Instant, waitingFor what: String,
    _ operation: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    // `nil` is the deadline; an operation's own result (even a nil one) comes wrapped.
    try await withThrowingTaskGroup(of: Result?.self) { group in
        group.addTask { .some(try await operation()) }
        group.addTask {
            try await LoopTimer.sleep(until: deadline)
            return nil
        }
        defer { group.cancelAll() }
        guard case .some(.some(let result)) = try await group.next() else {
            throw ServiceError.unavailable("\(what) did not come in time")
        }
        return result
    }
}
