import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import Synchronization
import TestSupport
import Testing

@testable import MediaService

/// ``Attachments/removeAbandonedUploads(olderThan:lease:)``: the records of abandoned uploads'
/// files outlive a clean-up pass that dies part way, and a file a store refuses stops no other's
/// removal (``Attachments/removeMarked(of:ids:deadline:)`` too).
@Suite("Abandoned uploads", .timeLimit(.minutes(1)))
struct AbandonedUploadsTests {
    /// A store whose deletes record their key and then, when `hangs`, wait until cancelled or
    /// until their deadline, and fail there as a timed-out call does; keys starting with one of
    /// `refusing` are refused.
    final class RecordingStore: MediaStore {
        let hangs: Bool
        let refusing: String?
        let asked = Mutex<[String]>([])

        init(hangs: Bool, refusing: String? = nil) {
            self.hangs = hangs
            self.refusing = refusing
        }

        func plan(fileName: String, media: SniffedMedia) -> PlannedFile {
            PlannedFile(storage: "test", key: unguessableToken(), token: unguessableToken())
        }

        func store(
            _ bytes: Data, as planned: PlannedFile, fileName: String, media: SniffedMedia, deadline: ContinuousClock.Instant?
        ) async throws -> StoredFile {
            StoredFile(storage: "test", key: planned.key, url: "test://\(planned.key)")
        }

        func delete(key: String, media type: String, deadline: ContinuousClock.Instant?) async throws {
            self.asked.withLock { $0.append(key) }
            if self.hangs {
                guard let deadline else { return try await Task.sleep(for: .seconds(3600)) }
                try await Task.sleep(until: deadline)
                throw ServiceError.unavailable("timed out")
            }
            if let refusing, key.hasPrefix(refusing) { throw ServiceError.unavailable("refused") }
        }
    }

    static func attachments(_ store: RecordingStore, on database: Database) throws -> Attachments {
        let logger = TestEnvironment.logger
        let connection = AMQPConnection(configuration: try TestEnvironment.amqpConfiguration(), logger: logger)
        return Attachments(
            client: database, store: store, stores: ["test": store],
            rpc: RPCClient(connection: connection, instanceName: "test", logger: logger), maximumUpload: 1,
            unboundBytesPerUser: 1,
            faults: FaultPoints(environment: ServiceEnvironment([:])), logger: logger)
    }

    /// Until the fifty-fourth session the refused file ended the pass, first in line for the
    /// next one, and no other abandoned upload's file was deleted again (a review).
    @Test("an abandoned upload's file the store refuses does not stop the others'; it is tried again once its claim expires")
    func refusedFileDoesNotStopThePass() async throws {
        let logger = TestEnvironment.logger
        try await withFreshSchema("media_refused", migrations: MediaMigrations.all) { database, _ in
            for (key, age) in [("bad", 4), ("k1", 3), ("k2", 2)] {
                try await database.write(
                    """
                    INSERT INTO uploads_in_progress (id, storage, storage_key, type, started_at)
                    VALUES (\(UUID()), 'test', \(key), 'IMAGE', now() - make_interval(hours => \(age)::int))
                    """, logger: logger)
            }
            let store = RecordingStore(hangs: false, refusing: "bad")
            let cleanUp = try Self.attachments(store, on: database)
            #expect(try await cleanUp.removeAbandonedUploads(olderThan: .seconds(3600)) == 2)
            #expect(store.asked.withLock { $0 }.sorted() == ["bad", "k1", "k2"])
            // Claimed still: the next pass leaves it until the lease is over, then tries it again.
            #expect(try await cleanUp.removeAbandonedUploads(olderThan: .seconds(3600)) == 0)
            #expect(store.asked.withLock { $0.count } == 3)
            #expect(try await cleanUp.removeAbandonedUploads(olderThan: .seconds(3600), lease: .zero) == 0)
            #expect(store.asked.withLock { $0 }.sorted() == ["bad", "bad", "k1", "k2"])
        }
    }

    /// 500 marked files the store refuses, first in line, and one it takes. Until the
    /// fifty-fourth session every pass read the same 500 first and ended: the last was never
    /// deleted (a review).
    @Test("a batch of marked files the store refuses goes behind the others: the next pass deletes those")
    func refusedMarkedFilesGoBehind() async throws {
        let logger = TestEnvironment.logger
        try await withFreshSchema("media_refused_marks", migrations: MediaMigrations.all) { database, _ in
            try await database.write(
                """
                INSERT INTO attachments (id, owner_id, type, content_type, size_bytes, file_name, storage, storage_key,
                                         url, removal_marked_at)
                SELECT gen_random_uuid(), gen_random_uuid(), 'FILE', 'text/plain', 1, 'a.txt', 'test',
                       CASE WHEN n <= 500 THEN 'bad-' || n ELSE 'good' END, 'test://x',
                       now() - interval '1 hour' + make_interval(secs => n)
                FROM generate_series(1, 501) AS n
                """, logger: logger)
            let store = RecordingStore(hangs: false, refusing: "bad")
            let cleanUp = try Self.attachments(store, on: database)
            #expect(try await cleanUp.removeMarked() == 0, "a whole batch refused ends the pass")
            #expect(!store.asked.withLock { $0 }.contains("good"))
            #expect(try await cleanUp.removeMarked() == 1)
            #expect(store.asked.withLock { $0 }.contains("good"))
        }
    }

    /// Until the fifty-sixth session a pass had no end of its own: against a store that hangs,
    /// each file waited out its attempts, about a day for a batch of 500 (a review).
    @Test("a clean-up pass against a store that hangs ends at its budget, shared; what it did not finish stays marked, unclaimed")
    func passEndsAtItsBudget() async throws {
        let logger = TestEnvironment.logger
        try await withFreshSchema("media_budget", migrations: MediaMigrations.all) { database, _ in
            try await database.write(
                """
                INSERT INTO attachments (id, owner_id, type, content_type, size_bytes, file_name, storage, storage_key,
                                         url, removal_marked_at)
                SELECT gen_random_uuid(), gen_random_uuid(), 'FILE', 'text/plain', 1, 'a.txt', 'test', 'marked-' || n,
                       'test://x', now() - interval '1 hour' + make_interval(secs => n)
                FROM generate_series(1, 2) AS n
                """, logger: logger)
            try await database.write(
                """
                INSERT INTO uploads_in_progress (id, storage, storage_key, type, started_at)
                SELECT gen_random_uuid(), 'test', 'abandoned-' || n, 'IMAGE', now() - interval '2 hours'
                FROM generate_series(1, 2) AS n
                """, logger: logger)
            let store = RecordingStore(hangs: true)
            let cleanUp = try Self.attachments(store, on: database)
            let started = ContinuousClock.now
            #expect(try await cleanUp.cleanUp(unboundOlderThan: .seconds(3600), budget: .seconds(3)) == 0)
            #expect(ContinuousClock.now - started < .seconds(20))
            // The marked files' half of the budget went on the first one, the rest on the first
            // abandoned upload's; a delete cut short by the budget gives its claim back.
            let asked = store.asked.withLock { $0 }
            #expect(asked.count == 2)
            #expect(asked.first == "marked-1")
            #expect(asked.last?.hasPrefix("abandoned-") == true)
            let left = try await database.query(
                """
                SELECT (SELECT count(*) FROM attachments WHERE removal_marked_at IS NOT NULL)::int,
                       (SELECT count(*) FROM uploads_in_progress WHERE claim IS NULL)::int
                """, logger: logger)
            for try await (marked, unclaimed) in left.decode((Int, Int).self) {
                #expect(marked == 2)
                #expect(unclaimed == 2)
            }
        }
    }

    @Test("while a pass deletes the first file, every record of the batch is still there; the next pass takes them")
    func recordsOutliveTheirPass() async throws {
        let logger = TestEnvironment.logger
        try await withFreshSchema("media_claims", migrations: MediaMigrations.all) { database, _ in
            let keys = ["k1", "k2", "k3"]
            for key in keys {
                try await database.write(
                    """
                    INSERT INTO uploads_in_progress (id, storage, storage_key, type, started_at)
                    VALUES (\(UUID()), 'test', \(key), 'IMAGE', now() - interval '2 hours')
                    """, logger: logger)
            }
            func attachments(_ store: RecordingStore) throws -> Attachments { try Self.attachments(store, on: database) }
            func records() async throws -> Int {
                var count = 0
                for try await n in try await database.query(
                    "SELECT count(*)::int FROM uploads_in_progress", logger: logger
                ).decode(Int.self) { count = n }
                return count
            }

            // A pass stuck in its first file's delete: what a crash now would leave.
            let hanging = RecordingStore(hangs: true)
            let cleanUp = try attachments(hanging)
            let pass = Task { try await cleanUp.removeAbandonedUploads(olderThan: .seconds(3600)) }
            #expect(await TestHelpers.eventually(timeout: .seconds(10)) { hanging.asked.withLock { $0.count } == 1 })
            #expect(try await records() == 3, "records were taken before their files were deleted")
            // Another pass leaves them to this one while its claim holds.
            let other = RecordingStore(hangs: false)
            #expect(try await attachments(other).removeAbandonedUploads(olderThan: .seconds(3600)) == 0)
            #expect(other.asked.withLock { $0 }.isEmpty)
            pass.cancel()
            _ = try? await pass.value

            // Claimed or given back, they are taken by the next pass once the lease is over.
            let working = RecordingStore(hangs: false)
            let removed = try await attachments(working).removeAbandonedUploads(olderThan: .seconds(3600), lease: .zero)
            #expect(removed == 3)
            #expect(Set(working.asked.withLock { $0 }) == Set(keys))
            #expect(try await records() == 0)
        }
    }
}
