import Foundation
import MessengerPostgres
import MessengerServiceKit
import TestSupport
import Testing

/// `/readyz`'s database check (``ReadinessCheck/postgres(_:limit:logger:)``) against a database
/// that stops answering.
@Suite("The readiness check of the database", .timeLimit(.minutes(1)))
struct DatabaseReadinessTests {
    @Test("on a frozen database each look answers 'down' within its limit, one SELECT 1 at a time; 'up' again once it answers")
    func frozenDatabase() async throws {
        var url = try #require(URLComponents(string: TestEnvironment.databaseURL))
        let proxy = try await CuttingProxy(to: url.host ?? "127.0.0.1", port: url.port ?? 5432)
        url.port = proxy.port
        let database = try DatabaseConfiguration(url: try #require(url.string), schema: "public").makeDatabase(
            logger: TestEnvironment.logger)
        try await whileRunning(database) {
            let check = ReadinessCheck.postgres(database, limit: .milliseconds(300), logger: TestEnvironment.logger)
            // The first look opens a connection, which may take longer than the limit on a busy
            // machine: looked at until it answers "up" (no statement is in flight then).
            var ready = false
            for _ in 0..<50 where !ready { ready = await check.isReady() }
            try #require(ready)
            proxy.countRequests(containing: "SELECT 1")
            proxy.freezeAnswers()
            for _ in 0..<3 {
                let started = ContinuousClock.now
                #expect(await check.isReady() == false)
                // Not a speed check: until the fifty-fifth session the look never ended.
                #expect(started.duration(to: .now) < .seconds(10))
            }
            #expect(proxy.counted <= 1, "the looks sent \(proxy.counted) statements")
            // The server answers again, but the statement sent stays unanswered for good (as on a
            // connection whose peer vanished): once it is ten limits old, a look sends another.
            // Until the session's diff review, `/readyz` stayed down until TCP gave up.
            proxy.thawAnswers()
            var back = false
            let thawed = ContinuousClock.now
            while !back && thawed.duration(to: .now) < .seconds(20) {
                back = await check.isReady()
                if !back { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(back, "the check said 'up' again")
        }
        try await proxy.close()
    }
}
