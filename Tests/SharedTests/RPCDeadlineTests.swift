import Foundation
import Logging
import MessengerContracts
import Synchronization
import Testing

@testable import MessengerAMQP

/// When an RPC handler's caller stops waiting
/// (``RPCServer/deadline(expiration:sentAt:redelivered:arrival:wallClock:)``).
@Suite("RPC deadlines")
struct RPCDeadlineTests {
    /// A deadline for a request published at `sent` and read at `wallClock` (ms since 1970).
    static func deadline(
        _ expiration: String?, sent: Int64? = nil, redelivered: Bool = false, arrival: ContinuousClock.Instant,
        wallClock: Int64 = 1_000_000
    ) -> ContinuousClock.Instant? {
        RPCServer.deadline(
            expiration: expiration, sentAt: sent.map { .int($0) }, redelivered: redelivered, arrival: arrival,
            wallClock: wallClock)
    }

    @Test("the expiration counts from the request's arrival; a request delivered again has its deadline passed")
    func redeliveredRequestsDeadline() {
        let arrival = ContinuousClock.now
        #expect(Self.deadline("5000", arrival: arrival) == arrival + .seconds(5))
        #expect(Self.deadline(nil, arrival: arrival) == nil)
        #expect(Self.deadline(nil, sent: 1_000_000 - 3_000, arrival: arrival) == nil)
        // RabbitMQ keeps the whole expiration when it requeues: counted again, it was a new window.
        #expect(Self.deadline("5000", redelivered: true, arrival: arrival) == arrival)
        #expect(Self.deadline(nil, redelivered: true, arrival: arrival) == arrival)
        // RabbitMQ's largest expiration, whatever the header says.
        #expect(Self.deadline(String(Int64.max), arrival: arrival) == arrival + .milliseconds(Int64(UInt32.max)))
    }

    /// Until the fifty-second session the wait in the queue was not counted: a request that
    /// queued 60 s behind media's prefetch had its 120 s again from its arrival.
    @Test("the wait in the queue past a second of clock disagreement is taken off, and never cuts below that second")
    func waitInTheQueue() {
        let arrival = ContinuousClock.now
        let now: Int64 = 1_000_000
        // Published 60 s before the arrival, with 120 s left: 61 s are left (the second allowed).
        #expect(Self.deadline("120000", sent: now - 60_000, arrival: arrival, wallClock: now) == arrival + .seconds(61))
        // Within the allowance, or published "after" the arrival (a clock behind): the whole window.
        #expect(Self.deadline("5000", sent: now - 800, arrival: arrival, wallClock: now) == arrival + .seconds(5))
        #expect(Self.deadline("5000", sent: now + 30_000, arrival: arrival, wallClock: now) == arrival + .seconds(5))
        // Most of the window waited: never below a second, or the window if it is shorter.
        #expect(Self.deadline("5000", sent: now - 5_500, arrival: arrival, wallClock: now) == arrival + .seconds(1))
        #expect(Self.deadline("500", sent: now - 1_200, arrival: arrival, wallClock: now) == arrival + .milliseconds(500))
        // A wait longer than the window and the allowance: the broker got the request late (its
        // expiration runs from then), and the caller gave up (until the fifty-third session the
        // whole window was given again; a review). A time that does not fit is not counted.
        #expect(Self.deadline("5000", sent: now - 6_001, arrival: arrival, wallClock: now) == arrival)
        #expect(Self.deadline("5000", sent: now - 3_600_000, arrival: arrival, wallClock: now) == arrival)
        #expect(Self.deadline("5000", sent: now - 6_000, arrival: arrival, wallClock: now) == arrival + .seconds(1))
        #expect(Self.deadline("5000", sent: .min, arrival: arrival, wallClock: now) == arrival + .seconds(5))
        // A header of another type is not a time.
        #expect(
            RPCServer.deadline(
                expiration: "5000", sentAt: .string("yesterday"), redelivered: false, arrival: arrival, wallClock: now)
                == arrival + .seconds(5))
    }

    /// Its first copy may still be running on a replica whose connection was lost: an
    /// `unavailable` answered at once reached the caller before that copy's real answer.
    @Test("a request delivered again is not answered when it cannot be served; any other outcome is")
    func redeliveredUnavailableIsNotAnswered() {
        #expect(!RPCServer.replies(redelivered: true, outcome: "unavailable"))
        #expect(RPCServer.replies(redelivered: false, outcome: "unavailable"))
        for outcome in ["ok", "unauthorized", "conflict", "internal"] {
            #expect(RPCServer.replies(redelivered: true, outcome: outcome))
        }
    }

    @Test(
        "a request whose deadline passed while it queued is answered unavailable without running its handler; one delivered again runs"
    )
    func expiredRequestIsNotRun() async throws {
        let runs = Atomic(0)
        var router = RPCRouter()
        router.on("test.echo.v1", EmptyPayload.self) { payload, _ in
            runs.add(1, ordering: .relaxed)
            return payload
        }
        let handler = try #require(router.handlers["test.echo.v1"])
        let body = try MessengerJSON.encode(Envelope(type: "test.echo.v1", data: EmptyPayload()))
        let logger = Logger(label: "test")

        let expired = await handler(body, .now - .milliseconds(1), false, logger)
        #expect(expired.outcome == "unavailable")
        let afterExpired = runs.load(ordering: .relaxed)
        #expect(afterExpired == 0)

        for deadline: ContinuousClock.Instant? in [.now + .seconds(60), nil] {
            let answered = await handler(body, deadline, false, logger)
            #expect(answered.outcome == "ok")
        }
        // A request delivered again has its deadline passed; its handler decides what to do.
        let redelivered = await handler(body, .now - .milliseconds(1), true, logger)
        #expect(redelivered.outcome == "ok")
        let afterAll = runs.load(ordering: .relaxed)
        #expect(afterAll == 3)
    }
}
