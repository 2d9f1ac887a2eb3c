import BenchSupport
import Foundation
import Logging
import MessengerPostgres
import PostgresNIO

/// How much the database held when a run started and ended. The figures depend on it: a
/// statement's cost grows with the tables it reads (small tables are scanned whole until the
/// planner prefers their indexes), and unacknowledged deliveries left by earlier runs are
/// pushed again on the retry schedule while this one runs.
struct DatabaseState: Codable {
    var messages: Int
    var events: Int
    var deliveries: Int
    /// Deliveries not acknowledged yet: each is pushed again until its retries run out.
    var pendingDeliveries: Int
    var sizeBytes: Int

    private struct Counts: PostgresPreparedStatement {
        static let sql = """
            SELECT (SELECT count(*) FROM messaging.messages), (SELECT count(*) FROM delivery.events),
                   (SELECT count(*) FROM delivery.deliveries),
                   (SELECT count(*) FROM delivery.deliveries WHERE status = 'PENDING'),
                   pg_database_size(current_database())
            """
        typealias Row = (Int64, Int64, Int64, Int64, Int64)
        func makeBindings() -> PostgresBindings { PostgresBindings() }
        func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
    }

    /// The database's state now, or nil (with a line on the console) when it cannot be read.
    static func measure(environment: [String: String], logger: Logger) async -> DatabaseState? {
        do {
            var database = try DatabaseConfiguration(
                url: environment["DATABASE_URL"] ?? "postgres://postgres@127.0.0.1:5433/messenger", schema: "public")
            database.maximumConnections = 1
            let client = database.makeClient(logger: logger)
            let running = Task { await client.run() }
            defer { running.cancel() }
            for try await (messages, events, deliveries, pending, size) in try await client.execute(Counts(), logger: logger) {
                return DatabaseState(
                    messages: Int(messages), events: Int(events), deliveries: Int(deliveries), pendingDeliveries: Int(pending),
                    sizeBytes: Int(size))
            }
            return nil
        } catch {
            say("  database state not read: \(error)")
            return nil
        }
    }

    var summary: String {
        "\(self.messages) messages, \(self.events) events, \(self.deliveries) deliveries (\(self.pendingDeliveries) pending), \(self.sizeBytes / (1 << 20)) MiB"
    }
}
