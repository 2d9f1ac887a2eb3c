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
}
