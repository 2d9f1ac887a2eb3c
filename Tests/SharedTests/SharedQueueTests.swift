import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import Testing

/// The durable queues that producers declare as well as their consumers (``SharedQueue``): a
/// producer must declare exactly what the consumer does, or the broker refuses one of them.
@Suite("Queues declared by producers and consumers")
struct SharedQueueTests {
    static let queueTypes: [[String: AMQPFieldValue]] = [["x-queue-type": "classic"], ["x-queue-type": "quorum"]]

    @Test("each producer's topology declares the consumer's queue, arguments and bindings exactly", arguments: queueTypes)
    func producerDeclaresConsumerQueue(queueArguments: [String: AMQPFieldValue]) throws {
        for shared in SharedQueue.all {
            let consumer = AMQPTopology(declaring: shared, queueArguments: queueArguments)
            #expect(!shared.producers.isEmpty)
            for producer in shared.producers {
                let topology = BackendService.topology(for: producer, queueArguments: queueArguments)
                let queues = topology.queues.filter { $0.name == shared.name }
                #expect(queues == consumer.queues, "\(producer) declares \(shared.name) differently")
                #expect(
                    Set(topology.bindings.filter { $0.queue == shared.name }) == Set(consumer.bindings),
                    "\(producer) binds \(shared.name) differently")
                let exchange = try #require(consumer.exchanges.first)
                #expect(topology.exchanges.filter { $0.name == exchange.name }.allSatisfy { $0 == exchange })
                #expect(topology.exchanges.contains(exchange))
            }
        }
    }

    @Test("the relays' events and delivery's pushes each have a queue their producer declares")
    func producers() {
        #expect(SharedQueue.produced(by: .messaging).map(\.name) == ["delivery.events", "media.messages-deleted"])
        #expect(SharedQueue.produced(by: .auth).map(\.name) == ["messaging.users"])
        #expect(SharedQueue.produced(by: .delivery).map(\.name) == ["gateway.pushes"])
        #expect(SharedQueue.produced(by: .media).isEmpty)
    }

    /// The arguments of queues that exist on running brokers: a change would make the broker
    /// refuse every service that declares the new ones.
    @Test("the definitions keep the arguments and bindings already deployed")
    func deployedDefinitions() {
        let classic: [String: AMQPFieldValue] = ["x-queue-type": "classic"]
        let events = AMQPTopology(declaring: DeliveryEvents.sharedQueue, queueArguments: classic)
        #expect(
            events.queues == [
                .init(
                    "delivery.events",
                    arguments: [
                        "x-queue-type": "classic", "x-single-active-consumer": true, "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": "delivery.events.dead",
                    ])
            ])
        #expect(events.exchanges == [.init("messenger.events", kind: .topic)])
        #expect(events.bindings == [.init(queue: "delivery.events", exchange: "messenger.events", routingKey: "messaging.#")])

        let users = AMQPTopology(declaring: UserEvents.sharedQueue, queueArguments: classic)
        #expect(users.queues == [.init("messaging.users", arguments: classic)])
        #expect(users.exchanges == [.init("messenger.events", kind: .topic)])
        #expect(
            users.bindings == [
                .init(queue: "messaging.users", exchange: "messenger.events", routingKey: "auth.user_created.v1"),
                .init(queue: "messaging.users", exchange: "messenger.events", routingKey: "auth.user_updated.v1"),
            ])

        let deletions = AMQPTopology(declaring: DeletedMessageFiles.sharedQueue, queueArguments: classic)
        #expect(
            deletions.queues == [
                .init(
                    "media.messages-deleted",
                    arguments: [
                        "x-queue-type": "classic", "x-dead-letter-exchange": "",
                        "x-dead-letter-routing-key": "media.messages-deleted.dead",
                    ])
            ])
        #expect(
            deletions.bindings == [
                .init(queue: "media.messages-deleted", exchange: "messenger.events", routingKey: "messaging.messages_deleted.v1")
            ])

        let pushes = AMQPTopology(declaring: GatewayPushes.sharedQueue, queueArguments: classic)
        #expect(pushes.queues == [.init("gateway.pushes", arguments: classic)])
        #expect(pushes.exchanges == [.init("messenger.gateway", kind: .direct)])
        #expect(pushes.bindings == [.init(queue: "gateway.pushes", exchange: "messenger.gateway", routingKey: "push")])
    }
}
