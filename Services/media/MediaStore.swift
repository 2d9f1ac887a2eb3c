import Foundation
import MessengerContracts

/// A stored file: how to find it again, and the URL clients fetch it from.
struct StoredFile: Sendable {
    var storage: String
    var key: String
    var url: String
}

/// Where a new file is to be stored, chosen before it is: an upload records it first, so that a
/// file whose upload never finished (the process crashed, the row could not be written) can
/// still be found and deleted.
struct PlannedFile: Sendable {
    /// The store's name (`StoredFile.storage`).
    var storage: String
    /// What ``MediaStore/delete(key:media:deadline:)`` takes to delete the file.
    var key: String
    /// The new unguessable name: 128 random bits, hex.
    var token: String
}

/// Where attachment bytes live. Two implementations: ``LocalMediaStore`` (the default) and
/// ``CloudinaryStore``.
protocol MediaStore: Sendable {
    /// A new unguessable place for a file called `fileName` of the type `media`.
    func plan(fileName: String, media: SniffedMedia) -> PlannedFile
    /// Stores `bytes` of the (already validated) type `media` where `planned` says. A store that
    /// retries stops once `deadline` (when the caller stops waiting) has passed. When it throws,
    /// the file may still have been stored (a remote store's answer lost, say): delete
    /// `planned.key` to be sure.
    func store(
        _ bytes: Data, as planned: PlannedFile, fileName: String, media: SniffedMedia, deadline: ContinuousClock.Instant?
    ) async throws -> StoredFile
    /// Deletes a stored file; a missing one is not an error. A store that retries stops once
    /// `deadline` has passed (nil: a background clean-up, with no caller waiting).
    func delete(key: String, media type: String, deadline: ContinuousClock.Instant?) async throws
}

/// A new unguessable token (128 random bits, hex) for a stored file's name.
func unguessableToken() -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<2).map { _ in String(generator.next() as UInt64, radix: 16) }.map {
        String(repeating: "0", count: 16 - $0.count) + $0
    }.joined()
}
