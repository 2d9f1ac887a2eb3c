import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import MediaService

/// ``LocalMediaStore``: a disk that refuses a file is the store being unavailable.
@Suite("The local file store")
struct LocalMediaStoreTests {
    /// Until the fifty-fourth session the disk's error reached the RPC server as an unknown
    /// error, and the client got 500 `internal`, a bug it does not retry (a review).
    @Test("a file the disk refuses is answered unavailable")
    func refusedByTheDisk() async throws {
        // A folder under a plain file cannot be made, whoever runs the test (root writes anywhere).
        let blocker = FileManager.default.temporaryDirectory.appendingPathComponent("media-blocker-\(UUID())")
        try Data("not a folder".utf8).write(to: blocker)
        defer { try? FileManager.default.removeItem(at: blocker) }
        let store = LocalMediaStore(directory: blocker.appendingPathComponent("media").path, logger: TestEnvironment.logger)
        let bytes = Data("hello, file".utf8)
        let media = try #require(MediaSniffer.sniff(Array(bytes)))
        let planned = store.plan(fileName: "note.txt", media: media)
        await #expect {
            _ = try await store.store(bytes, as: planned, fileName: "note.txt", media: media, deadline: nil)
        } throws: { error in
            (error as? ServiceError)?.code == .unavailable
        }
    }
}
