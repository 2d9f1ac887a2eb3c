import Foundation
import TestSupport
import Testing

@testable import DeliveryService

/// A page of `sync` (and of a gateway's replay) is bounded by its events' bytes as well as by
/// their count (``EventLog/events(user:afterSeq:limit:includeAcknowledged:)``).
@Suite("Pages of events", .timeLimit(.minutes(1)))
struct EventPageTests {
    @Test("a page stops once its events' data passes a megabyte, with more to come; a larger event comes alone")
    func pagesBoundedInBytes() async throws {
        try await withFreshSchema("event_pages", migrations: DeliveryMigrations.all) { database, _ in
            let log = EventLog(client: database, retention: .seconds(3600), logger: TestEnvironment.logger)
            let recipient = UUID()
            // 400 KB each: two fit in a megabyte, three do not.
            var seqs = try await log.recordMessages(5, to: recipient, bodyLength: 400_000)
            seqs += try await log.recordMessages(1, to: recipient, bodyLength: 1_500_000)
            var pages: [[Int64]] = []
            var after: Int64 = 0
            while true {
                let page = try await log.events(user: recipient, afterSeq: after, limit: 500)
                pages.append(page.events.map(\.seq))
                guard page.hasMore, let last = page.events.last?.seq else { break }
                after = last
            }
            #expect(pages == [Array(seqs[0...1]), Array(seqs[2...3]), [seqs[4]], [seqs[5]]])
        }
    }
}
