import Testing

@testable import SocketGateway

@Suite("Socket command rate")
struct CommandRateLimitTests {
    @Test("a bucket gives its burst at once, then lends at its rate: each command past it waits its turn")
    func bucket() {
        var bucket = TokenBucket(burst: 3, now: 0)
        #expect((0..<3).map { _ in bucket.take(now: 0, rate: 2, burst: 3) } == [0, 0, 0])
        #expect(bucket.take(now: 0, rate: 2, burst: 3) == 0.5)
        #expect(bucket.take(now: 0, rate: 2, burst: 3) == 1.0)
        #expect(bucket.take(now: 1.0, rate: 2, burst: 3) == 0.5)
        // A long pause pays the debt and fills it up to its burst, no further.
        #expect(bucket.isFull(now: 100, rate: 2, burst: 3))
        #expect((0..<4).map { _ in bucket.take(now: 100, rate: 2, burst: 3) } == [0, 0, 0, 0.5])
    }

    @Test("the limit is per user; ack_events is not counted; a rate of 0 is no limit")
    func perUser() {
        let limit = CommandRateLimit(settings: .init(rate: 1, burst: 2))
        #expect(limit.delay(user: "a", event: "create_message") == .zero)
        #expect(limit.delay(user: "a", event: "typing") == .zero)
        let waited = limit.delay(user: "a", event: "create_message")
        #expect(waited > .milliseconds(900) && waited <= .seconds(1))
        #expect(limit.delay(user: "a", event: "ack_events") == .zero)
        #expect(limit.delay(user: "b", event: "create_message") == .zero)
        let off = CommandRateLimit(settings: .init(rate: 0, burst: 1))
        #expect((0..<100).allSatisfy { _ in off.delay(user: "a", event: "create_message") == .zero })
    }
}
