/// Which deliveries a retry check tries, and what it counts for them.
///
/// A delivery is tried once when recorded and once more at each check, so check n finds it
/// tried n times and leaves it tried n + 1 times. The count a check leaves is its level's, not
/// one more than it found: a check the broker delivers again (a failure after its statement
/// committed: a nacked publish, a crash, a lost channel) counts nothing more, and the next
/// check finds what it expects. Until the fifty-fifth session each run added one, and a check
/// that ran twice left its deliveries tried n + 2 times, so check n + 1 found nothing to try:
/// the chain ended, with no later push and no dead letter (a review).
///
/// A delivery tried more often than its check's level was tried by another chain of checks for
/// the same event (the domain event came again after its first check was confirmed, its ack
/// lost, and a second first check followed): that chain ends at its first check, instead of
/// pushing again at every level and sending a second dead letter (the fifty-third session).
struct RetryLevel: Equatable, Sendable {
    /// Only deliveries tried at most this many times.
    var mostAttempts: Int
    /// How many times they will have been tried; nil: once more than they were.
    var attemptsAfter: Int32?
}

extension RetryLevel {
    /// The level of `check`. Delivered again, it may already have counted its level: it also
    /// tries deliveries tried once more than its level finds. An operator's check past what the
    /// count holds tries any delivery, once more.
    init(_ check: RetryCheck, redelivered: Bool) {
        let level = max(check.attempt, 1)
        guard level < Int(Int32.max) else {
            self.mostAttempts = .max
            self.attemptsAfter = nil
            return
        }
        self.mostAttempts = redelivered ? level + 1 : level
        self.attemptsAfter = Int32(level + 1)
    }
}
