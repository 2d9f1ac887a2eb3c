import Foundation
import MessengerPostgres
import MessengerServiceKit
import TestSupport
import Testing

@testable import AuthService

/// ``SigningKeyStore``: replicas that start together with no key configured sign with one key.
@Suite("The generated signing key", .timeLimit(.minutes(1)))
struct SigningKeyStoreTests {
    @Test("replicas generating the key at the same moment all end up with the same one")
    func oneKeyForEveryReplica() async throws {
        let logger = TestEnvironment.logger
        try await withFreshSchema("auth_keys", migrations: AuthMigrations.all) { database, schema in
            // Each insert commits a random while after it started (and after its `created_at`),
            // so that without the lock a replica could commit and read before an older insert
            // committed, and keep its own key.
            try await database.write(
                """
                CREATE FUNCTION \(unescaped: schema).slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN PERFORM pg_sleep(random() * 0.5); RETURN NEW; END $$
                """, logger: logger)
            try await database.write(
                """
                CREATE TRIGGER slow_commit AFTER INSERT ON \(unescaped: schema).signing_keys
                FOR EACH ROW EXECUTE FUNCTION \(unescaped: schema).slow_commit()
                """, logger: logger)
            let kids = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<12 {
                    group.addTask { try await SigningKeyStore.load(.generated, client: database, logger: logger).kid }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(kids.count == 1, "\(kids.count) keys")
        }
    }
}
