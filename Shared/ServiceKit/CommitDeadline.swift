import MessengerContracts

/// Whether a write its caller may already have given up on should still commit. A request
/// answered `unavailable` (the gateway stops waiting at its deadline) must have changed nothing,
/// so that the retry the contract allows finds things as they were: a refresh token rotated
/// after its caller left makes the retry a reuse, which ends the session; an account created
/// after its caller left makes the retry a 409 for the user's own name, and a group created after
/// its caller left makes the retry a second group. Such a write checks, right before its commit,
/// that there is time left for the commit and the answer.
public enum CommitDeadline {
    /// Room kept for the commit and for the answer to reach the caller.
    public static let margin = Duration.milliseconds(500)

    /// Throws `unavailable` when less than ``margin`` is left before `deadline`.
    public static func ensureTimeLeft(before deadline: ContinuousClock.Instant?) throws {
        guard let deadline, ContinuousClock.now + Self.margin >= deadline else { return }
        throw ServiceError.unavailable("the request's deadline passed before its write could commit", retryAfter: 1)
    }
}
