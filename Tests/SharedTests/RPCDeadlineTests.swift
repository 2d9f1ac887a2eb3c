import Foundation
import Logging
import MessengerContracts
import Synchronization
import Testing

@testable import MessengerAMQP

/// When an RPC handler's caller stops waiting (``RPCServer/deadline(expiration:redelivered:arrival:)``).
@Suite("RPC deadlines")
struct RPCDeadlineTests {
    @Test("the expiration counts from the request's arrival; a request delivered again has its deadline passed")
    func redeliveredRequestsDeadline() {
        let arrival = ContinuousClock.now
        #expect(RPCServer.deadline(expiration: "5000", redelivered: false, arrival: arrival) == arrival + .seconds(5))
        #expect(RPCServer.deadline(expiration: nil, redelivered: false, arrival: arrival) == nil)
        // RabbitMQ keeps the whole expiration when it requeues: counted again, it was a new window.
        #expect(RPCServer.deadline(expiration: "5000", redelivered: true, arrival: arrival) == arrival)
        #expect(RPCServer.deadline(expiration: nil, redelivered: true, arrival: arrival) == arrival)
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
