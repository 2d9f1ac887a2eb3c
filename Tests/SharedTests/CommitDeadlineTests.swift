import MessengerContracts
import MessengerServiceKit
import Testing

@Suite("A write commits only with time left for its answer")
struct CommitDeadlineTests {
    @Test("no deadline, or one further off than the margin, lets the write commit")
    func timeLeft() throws {
        try CommitDeadline.ensureTimeLeft(before: nil)
        try CommitDeadline.ensureTimeLeft(before: .now + .seconds(5))
    }

    @Test("a deadline passed, or within the margin, is unavailable, with when to retry")
    func noTimeLeft() {
        for deadline in [ContinuousClock.now - .seconds(1), .now + CommitDeadline.margin / 2] {
            #expect(
                throws: ServiceError.unavailable("the request's deadline passed before its write could commit", retryAfter: 1)
            ) {
                try CommitDeadline.ensureTimeLeft(before: deadline)
            }
        }
    }
}
