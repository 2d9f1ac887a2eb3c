import Foundation
import MessengerContracts
import MessengerPostgres
import TestSupport
import Testing

@testable import MediaService

/// `add_attachments` whose caller stopped waiting while its uploads were being reserved: since
/// the fifty-seventh session the RPC client refuses a call past the deadline of the request it
/// serves, so messaging is not asked, and the uploads go back (they stayed bound to a message
/// messaging never heard of).
@Suite("An attach whose caller stopped waiting", .timeLimit(.minutes(1)))
struct AttachDeadlineTests {
    @Test("uploads reserved after the request's deadline passed are given back, and the caller is told unavailable")
    func reservedPastTheDeadlineGoBack() async throws {
        let logger = TestEnvironment.logger
        try await withFreshSchema("media_attach_deadline", migrations: MediaMigrations.all) { database, _ in
            let (upload, owner, message) = (UUID(), UUID(), UUID())
            try await database.write(
                """
                INSERT INTO attachments (id, owner_id, type, content_type, size_bytes, file_name, storage, storage_key, url)
                VALUES (\(upload), \(owner), 'IMAGE', 'image/png', 10, 'a.png', 'test', 'k', 'test://k')
                """, logger: logger)
            let attachments = try AbandonedUploadsTests.attachments(.init(hangs: false), on: database)
            let (lockClass, lockKey) = (Attachments.bindLockClass, Attachments.bindLockKey(message))
            let outcome = try await database.withConnection { holder in
                // Another bind to the message holds its lock past the request's deadline.
                try await holder.query("SELECT pg_advisory_lock(\(lockClass), \(lockKey))", logger: logger)
                // The deadline leaves the attach ample time to get a connection on a loaded
                // machine (a first CI run failed with 300 ms, and a run of the whole suite once
                // with 3 s), and passes while it waits for the lock.
                let attaching = Task {
                    try await RequestDeadline.$current.withValue(.now + .seconds(8)) {
                        try await attachments.addAttachments(
                            AddAttachmentsRequest(messageId: EntityID(message), attachmentIds: [EntityID(upload)]), actor: owner)
                    }
                }
                try await Task.sleep(for: .seconds(9))
                try await holder.query("SELECT pg_advisory_unlock(\(lockClass), \(lockKey))", logger: logger)
                return await attaching.result
            }
            guard case .failure(let error as ServiceError) = outcome else {
                Issue.record("the attach was not refused: \(outcome)")
                return
            }
            #expect(error.code == .unavailable && error.message == "the request's caller stopped waiting")
            let rows = try await database.query(
                "SELECT message_id IS NULL, attach_pending FROM attachments WHERE id = \(upload)", logger: logger)
            var found: [(Bool, Int)] = []
            for try await row in rows.decode((Bool, Int).self) { found.append(row) }
            #expect(found.count == 1 && found[0].0 && found[0].1 == 0, "the upload stayed reserved: \(found)")
        }
    }
}
