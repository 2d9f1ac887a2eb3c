import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import DeliveryService

/// What bounds the pushes delivery holds at once: the ``PushBudget`` of the domain-event
/// consumer, and the log's reads that share an event's data among its deliveries.
@Suite("Bounds on pushes in memory", .timeLimit(.minutes(1)))
struct PushBoundsTests {
    @Test("a take within the budget goes at once; one past it waits for a give; one larger than the budget goes alone")
    func budget() async throws {
        let budget = PushBudget(limit: 100)
        await budget.take(60)
        await budget.take(40)
        let waited = Task { await budget.take(30) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(budget.inFlight == 100, "the third take waits")
        budget.give(60)
        await waited.value
        #expect(budget.inFlight == 70)
        budget.give(40)
        budget.give(30)
        await budget.take(500)
        #expect(budget.inFlight == 500, "larger than the budget, with nothing else in flight")
        budget.give(500)
    }

    @Test("at graceful shutdown the waiting take goes on, and every later one")
    func shutdownLiftsTheBound() async throws {
        let budget = PushBudget(limit: 10)
        await budget.take(10)
        let waited = Task { await budget.take(10) }
        try await Task.sleep(for: .milliseconds(50))
        budget.stopBounding()
        await waited.value
        await budget.take(10)
        #expect(budget.inFlight == 30)
    }

    @Test("a push's bytes count its event's share of the message once per recipient")
    func pushBytes() {
        let event = IncomingEvent(
            id: UUID(), occurredAt: Date(), actor: nil, name: "MESSAGE_CREATED", threadID: UUID(),
            recipients: (0..<256).map { _ in UUID() }, data: .object([:]))
        #expect(DomainEventConsumer.pushBytes(of: [event], carriedIn: 24_000) == 256 * (24_000 + 320))
        #expect(DomainEventConsumer.pushBytes(of: [event, event], carriedIn: 24_000) == 2 * 256 * (12_000 + 320))
        #expect(DomainEventConsumer.pushBytes(of: [], carriedIn: 10) == 0)
    }

    @Test("a retry and a redelivered record give every recipient its event's data, read once per event")
    func sharedData() async throws {
        try await withFreshSchema("push_bounds", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let recipients = (0..<5).map { _ in UUID() }
            let events = (0..<3).map { n in
                IncomingEvent(
                    id: UUID(), occurredAt: Date(), actor: nil, name: "MESSAGE_CREATED", threadID: UUID(),
                    recipients: recipients, data: .object(["n": .number(Double(n)), "body": .string("b\(n)")]))
            }
            let recorded = try await log.record(events)
            #expect(recorded.count == 15)
            let texts = Dictionary(recorded.map { ($0.eventID, $0.dataJSON) }, uniquingKeysWith: { a, _ in a })
            #expect(Set(texts.values).count == 3)
            func check(_ deliveries: [Delivery]) {
                #expect(deliveries.count == 15)
                for delivery in deliveries { #expect(delivery.dataJSON == texts[delivery.eventID]) }
                #expect(Set(deliveries.map { "\($0.eventID) \($0.userID)" }).count == 15)
            }
            check(try await log.retry(events: events.map(\.id)))
            check(try await log.record(events))  // a redelivery: the pending deliveries, read again
        }
    }
}
