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
    @Test("check n tries deliveries tried n times, n + 1 when it came again, and leaves them tried n + 1 times")
    func levels() {
        let first = RetryCheck(eventIds: [EntityID(UUID())], attempt: 1)
        #expect(RetryLevel(first, redelivered: false) == RetryLevel(mostAttempts: 1, attemptsAfter: 2))
        #expect(RetryLevel(first, redelivered: true) == RetryLevel(mostAttempts: 2, attemptsAfter: 2))
        let third = RetryCheck(eventIds: first.eventIds, attempt: 3)
        #expect(RetryLevel(third, redelivered: false) == RetryLevel(mostAttempts: 3, attemptsAfter: 4))
        #expect(
            RetryLevel(RetryCheck(eventIds: [], attempt: -5), redelivered: false)
                == RetryLevel(mostAttempts: 1, attemptsAfter: 2))
        // An operator's check past what the count holds: any delivery, once more.
        #expect(
            RetryLevel(RetryCheck(eventIds: [], attempt: .max), redelivered: true)
                == RetryLevel(mostAttempts: .max, attemptsAfter: nil))
        #expect(
            RetryLevel(RetryCheck(eventIds: [], attempt: Int(Int32.max) - 1), redelivered: false)
                == RetryLevel(mostAttempts: Int(Int32.max) - 1, attemptsAfter: Int32.max))
    }

    @Test("a second chain's check finds its deliveries tried already, and ends; the first chain goes on, at every level")
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
                    level: RetryLevel(RetryCheck(eventIds: [EntityID(event.id)], attempt: attempt), redelivered: redelivered)
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
            // The chain goes on at its next level: check 2 ran three times, and counted once.
            // Until the fifty-fifth session each run counted, and check 3 found nothing to try.
            let third = try await check(3, false)
            #expect(third == 2, "the first chain's third check")
            let fourth = try await check(4, true)
            #expect(fourth == 2, "its fourth, delivered again before it ran")
            // A replayed dead letter is not a chain: it tries again whatever the count.
            let replayed = try await log.retry(events: [event.id], users: [event.recipients[0]])
            #expect(replayed.count == 1)
        }
    }
}
