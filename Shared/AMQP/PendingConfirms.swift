import ThreadedIO

/// The confirms of messages queued with ``AMQPConnection/startPublishing(_:)``.
public struct PendingConfirms: Sendable {
    let promises: [Promise<Void>]

    /// Returns once the broker confirmed every message; throws the first failure (a nack, an
    /// unroutable mandatory message, shutdown). Cancelling the task stops the wait, not the
    /// publishes.
    public func confirmed() async throws {
        var firstError: (any Error)?
        for promise in self.promises {
            do { try await promise.value() } catch { firstError = firstError ?? error }
        }
        if let firstError { throw firstError }
    }
}
