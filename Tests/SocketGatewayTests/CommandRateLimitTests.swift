import Testing

@testable import SocketGateway

@Suite("Socket command rate")
struct CommandRateLimitTests {
    @Test("a bucket gives its burst at once, then its rate, and says how long to wait")
    func bucket() {
        var bucket = TokenBucket(burst: 3, now: 0)
        #expect((0..<3).map { _ in bucket.take(now: 0, rate: 2, burst: 3) } == [nil, nil, nil])
        #expect(bucket.take(now: 0, rate: 2, burst: 3) == 0.5)
        #expect(bucket.take(now: 0.25, rate: 2, burst: 3) == 0.25)
        #expect(bucket.take(now: 0.5, rate: 2, burst: 3) == nil)
        // A long pause fills it up to its burst, no further.
        #expect(bucket.isFull(now: 100, rate: 2, burst: 3))
        #expect((0..<4).map { _ in bucket.take(now: 100, rate: 2, burst: 3) == nil } == [true, true, true, false])
    }

    @Test("the limit is per user; ack_events is not counted; a rate of 0 is no limit")
    func perUser() {
        let limit = CommandRateLimit(settings: .init(rate: 1, burst: 2))
        #expect(limit.retryAfter(user: "a", event: "create_message") == nil)
        #expect(limit.retryAfter(user: "a", event: "typing") == nil)
        #expect(limit.retryAfter(user: "a", event: "create_message") == 1)
        #expect(limit.retryAfter(user: "a", event: "ack_events") == nil)
        #expect(limit.retryAfter(user: "b", event: "create_message") == nil)
        let off = CommandRateLimit(settings: .init(rate: 0, burst: 1))
        #expect((0..<100).allSatisfy { _ in off.retryAfter(user: "a", event: "create_message") == nil })
    }
}
