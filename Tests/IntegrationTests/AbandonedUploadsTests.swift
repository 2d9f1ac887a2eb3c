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
/// files outlive a clean-up pass that dies part way.
@Suite("Abandoned uploads", .timeLimit(.minutes(1)))
struct AbandonedUploadsTests {
    /// A store whose deletes record their key and then, when `hangs`, wait until cancelled.
    final class RecordingStore: MediaStore {
        let hangs: Bool
        let asked = Mutex<[String]>([])

        init(hangs: Bool) { self.hangs = hangs }

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
            if self.hangs { try await Task.sleep(for: .seconds(3600)) }
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
            func attachments(_ store: RecordingStore) throws -> Attachments {
                let connection = AMQPConnection(configuration: try TestEnvironment.amqpConfiguration(), logger: logger)
                return Attachments(
                    client: database, store: store, stores: ["test": store],
                    rpc: RPCClient(connection: connection, instanceName: "test", logger: logger), maximumUpload: 1,
                    unboundBytesPerUser: 1,
                    faults: FaultPoints(environment: ServiceEnvironment([:])), logger: logger)
            }
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
