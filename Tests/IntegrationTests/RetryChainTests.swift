import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import DeliveryService

/// Chains of retry checks: each check tries again what its level finds, and a second chain for
/// the same events (a domain event that came again after its first check was confirmed) ends at
/// its first check.
@Suite("Retry chains", .timeLimit(.minutes(1)))
struct RetryChainTests {
    @Test("check n tries deliveries tried n times; any when it came again; an operator's any")
    func mostAttempts() {
        let first = RetryCheck(eventIds: [EntityID(UUID())], attempt: 1)
        #expect(RetryConsumer.mostAttempts(first, redelivered: false) == 1)
        #expect(RetryConsumer.mostAttempts(first, redelivered: true) == .max)
        let third = RetryCheck(eventIds: first.eventIds, attempt: 3)
        #expect(RetryConsumer.mostAttempts(third, redelivered: false) == 3)
        #expect(RetryConsumer.mostAttempts(RetryCheck(eventIds: [], attempt: -5), redelivered: false) == 1)
        #expect(RetryConsumer.mostAttempts(RetryCheck(eventIds: [], attempt: .max), redelivered: true) == .max)
    }

    @Test("a second chain's check finds its deliveries tried already, and ends; the first chain goes on")
    func overtakenChainEnds() async throws {
        try await withFreshSchema("retry_chains", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let event = IncomingEvent(
                id: UUID(), occurredAt: Date(), actor: nil, name: "MESSAGE_CREATED", threadID: UUID(),
                recipients: [UUID(), UUID()], data: .object(["body": .string("hi")]))
            let recorded = try await log.record([event])
            #expect(recorded.count == 2)
            let check: (Int, Bool) async throws -> Int = { attempt, redelivered in
                try await log.retry(
                    events: [event.id],
                    mostAttempts: RetryConsumer.mostAttempts(
                        RetryCheck(eventIds: [EntityID(event.id)], attempt: attempt), redelivered: redelivered)
                ).count
            }
            let firstChain = try await check(1, false)
            let secondChain = try await check(1, false)
            #expect(firstChain == 2 && secondChain == 0, "the second chain's first check ends it")
            let second = try await check(2, false)
            let secondAgain = try await check(2, true)
            let secondOnceMore = try await check(2, true)
            let secondOvertaken = try await check(2, false)
            #expect(second == 2, "the first chain's second check")
            #expect(secondAgain == 2, "that check again, after a failure past its statement")
            #expect(secondOnceMore == 2, "and again: a chain is never lost")
            #expect(secondOvertaken == 0)
            // A replayed dead letter is not a chain: it tries again whatever the count.
            let replayed = try await log.retry(events: [event.id], users: [event.recipients[0]])
            #expect(replayed.count == 1)
        }
    }
}
