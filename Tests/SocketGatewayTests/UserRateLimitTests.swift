import MessengerContracts
import Testing

@testable import SocketGateway

@Suite("Rates per user: socket commands and REST requests")
struct UserRateLimitTests {
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

    @Test("without lending, a bucket past its burst takes nothing and says when a token will be there")
    func bucketWithoutLending() {
        var bucket = TokenBucket(burst: 2, now: 0)
        #expect((0..<2).map { _ in bucket.takeIfInHand(now: 0, rate: 4, burst: 2) } == [0, 0])
        // Refusals take nothing: asking again and again does not push the next token away.
        #expect((0..<5).map { _ in bucket.takeIfInHand(now: 0, rate: 4, burst: 2) } == [0.25, 0.25, 0.25, 0.25, 0.25])
        #expect(bucket.takeIfInHand(now: 0.125, rate: 4, burst: 2) == 0.125)
        #expect(bucket.takeIfInHand(now: 0.25, rate: 4, burst: 2) == 0)
        #expect(bucket.takeIfInHand(now: 0.25, rate: 4, burst: 2) == 0.25)
    }

    @Test("the command limit is per user; ack_events is not counted; a rate of 0 is no limit")
    func commandsPerUser() {
        let limit = CommandRateLimit(settings: .init(rate: 1, burst: 2))
        #expect(limit.delay(user: "a", event: "create_message") == .zero)
        #expect(limit.delay(user: "a", event: "typing") == .zero)
        let waited = limit.delay(user: "a", event: "create_message")
        // A second's wait less the time since the first call: on a stalled machine, that may be
        // more than a tenth of a second.
        #expect(waited > .zero && waited <= .seconds(1))
        #expect(limit.delay(user: "a", event: "ack_events") == .zero)
        #expect(limit.delay(user: "b", event: "create_message") == .zero)
        let off = CommandRateLimit(settings: .init(rate: 0, burst: 1))
        #expect((0..<100).allSatisfy { _ in off.delay(user: "a", event: "create_message") == .zero })
    }

    @Test("a REST request past its user's burst is rate_limited with Retry-After in whole seconds, 1 at least")
    func requestsPerUser() {
        let limit = RequestRateLimit(settings: .init(rate: 1, burst: 2))
        #expect(throws: Never.self) { try limit.admit(user: "a") }
        #expect(throws: Never.self) { try limit.admit(user: "a") }
        #expect {
            try limit.admit(user: "a")
        } throws: { error in
            let error = error as? ServiceError
            return error?.code == .rateLimited && error?.retryAfter == 1
        }
        #expect(throws: Never.self) { try limit.admit(user: "b") }
        let slow = RequestRateLimit(settings: .init(rate: 1, burst: 1))
        try? slow.admit(user: "a")
        // The wait, just under a second, is rounded up.
        #expect(throws: ServiceError.self) { try slow.admit(user: "a") }
        let off = RequestRateLimit(settings: .init(rate: 0, burst: 1))
        #expect((0..<100).allSatisfy { _ in (try? off.admit(user: "a")) != nil })
    }
}
