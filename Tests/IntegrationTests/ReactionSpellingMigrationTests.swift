import Foundation
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing

@testable import MessagingService

@Suite("messaging's reactions migration", .timeLimit(.minutes(1)))
struct ReactionSpellingMigrationTests {
    @Test("reactions stored before emojiHex had one spelling are merged into it; U+0000 ones are dropped")
    func merged() async throws {
        let before = MessagingMigrations.all.filter { $0.version < MessagingMigrations.reactionsInOneSpelling.version }
        try await withFreshSchema("test_reaction_spelling", migrations: before) { client, schema in
            let logger = TestEnvironment.logger
            let (thread, message, ann, bob) = (UUID(), UUID(), UUID(), UUID())
            try await client.query(
                """
                INSERT INTO \(unescaped: schema).threads (id, type, title, created_by, created_at, last_activity_at)
                VALUES (\(thread), 'GROUP', 't', \(ann), now(), now())
                """, logger: logger)
            try await client.query(
                """
                INSERT INTO \(unescaped: schema).messages (id, thread_id, seq, sender_id, client_message_id, body, created_at)
                VALUES (\(message), \(thread), 1, \(ann), 'c1', 'hi', now())
                """, logger: logger)
            // (user, emojiHex, seconds ago): ann has "A" three ways and a heart; bob has "A" once,
            // spelled the old way, and U+0000.
            let stored: [(UUID, String, Int)] = [
                (ann, "0041", 30), (ann, "41", 20), (ann, "041", 40), (ann, "2764-fe0f", 10),
                (bob, "0041", 5), (bob, "0", 5), (bob, "1f44d-0000", 5),
            ]
            // Ages from one fixed time, not `now()` at each read: a migration that took more than
            // half a second on a busy machine made every age one more.
            let reference = Date()
            for (user, emoji, age) in stored {
                try await client.query(
                    """
                    INSERT INTO \(unescaped: schema).reactions (message_id, user_id, emoji_hex, created_at)
                    VALUES (\(message), \(user), \(emoji), \(reference.addingTimeInterval(-Double(age))))
                    """, logger: logger)
            }

            let applied = try await DatabaseMigrator(
                client: client, schema: schema, migrations: MessagingMigrations.all, logger: logger
            ).run()
            // This one, and those after it.
            let version = MessagingMigrations.reactionsInOneSpelling.version
            #expect(applied == MessagingMigrations.all.map(\.version).filter { $0 >= version })

            var kept: [String] = []
            let rows = try await client.query(
                """
                SELECT user_id::text || ' ' || emoji_hex || ' ' || round(extract(epoch FROM \(reference) - created_at))::text
                FROM \(unescaped: schema).reactions ORDER BY 1
                """, logger: logger)
            for try await row in rows.decode(String.self) { kept.append(row) }
            // ann's earliest "A" (40 s ago) is the one kept.
            let (a, b) = (ann.uuidString.lowercased(), bob.uuidString.lowercased())
            #expect(kept == ["\(a) 2764-fe0f 10", "\(a) 41 40", "\(b) 41 5"].sorted())
        }
    }
}
