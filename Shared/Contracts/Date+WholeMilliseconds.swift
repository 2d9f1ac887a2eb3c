import Foundation

extension Date {
    /// The current time in a whole millisecond, rounded up: what a new record stores and answers.
    ///
    /// The contract's timestamps show milliseconds, PostgreSQL keeps microseconds, and
    /// ``Timestamp/format(_:)`` rounds to the nearest millisecond. A record created with `Date()`
    /// and answered from that value could show one millisecond more than the stored row read back
    /// later (one time in about two thousand: `.1235003` answered `.124`, stored `.123500`, read
    /// `.123`). A whole millisecond is answered and read back alike. Until the fifty-eighth session
    /// only messages were created so; users, threads and attachments were not (a review).
    public static func nowInWholeMilliseconds() -> Date {
        Date().inWholeMilliseconds
    }

    /// This instant rounded up to a whole millisecond.
    public var inWholeMilliseconds: Date {
        Date(timeIntervalSince1970: (self.timeIntervalSince1970 * 1000).rounded(.up) / 1000)
    }
}
