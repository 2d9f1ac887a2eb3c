import MessengerAMQP
import Testing

/// What the publishing connection of an ``AMQPConnection`` declares of a topology.
@Suite("AMQP topology")
struct AMQPTopologyTests {
    @Test("without its exclusive queues, a topology keeps its exchanges, other queues and their bindings")
    func withoutExclusiveQueues() {
        let topology = AMQPTopology(
            exchanges: [.init("events", kind: .topic)],
            queues: [
                .init("shared", arguments: ["x-queue-type": "quorum"]),
                .init("replies", durable: false, exclusive: true, autoDelete: true),
            ],
            bindings: [
                .init(queue: "shared", exchange: "events", routingKey: "a.#"),
                .init(queue: "replies", exchange: "events", routingKey: "keys.changed"),
            ])
        let published = topology.withoutExclusiveQueues
        #expect(published.exchanges == topology.exchanges)
        #expect(published.queues.map(\.name) == ["shared"])
        #expect(published.bindings == [.init(queue: "shared", exchange: "events", routingKey: "a.#")])
        #expect(AMQPTopology().withoutExclusiveQueues == AMQPTopology())
    }
}
