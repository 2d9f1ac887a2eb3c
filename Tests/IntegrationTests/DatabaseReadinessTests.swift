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
            // Its first look opens a connection, which may take a while on a busy machine: a
            // generous limit. The connection stays in the pool for the check below, which has no
            // statement in flight when the server freezes.
            let patient = ReadinessCheck.postgres(database, limit: .seconds(20), logger: TestEnvironment.logger)
            #expect(await patient.isReady())
            let check = ReadinessCheck.postgres(database, limit: .milliseconds(300), logger: TestEnvironment.logger)
            proxy.countRequests(containing: "SELECT 1")
            proxy.freezeAnswers()
            let frozen = ContinuousClock.now
            for _ in 0..<5 {
                let started = ContinuousClock.now
                #expect(await check.isReady() == false)
                // Not a speed check: until the fifty-fifth session the look never ended.
                #expect(started.duration(to: .now) < .seconds(10))
            }
            // One statement, and one more for each ten limits the looks took (a busy machine may
            // run them late).
            let allowed = 1 + Int(frozen.duration(to: .now) / .seconds(3))
            #expect(proxy.counted <= allowed, "the looks sent \(proxy.counted) statements")
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
