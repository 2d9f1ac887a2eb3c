import Foundation
import MessengerContracts

/// A stored file: how to find it again, and the URL clients fetch it from.
struct StoredFile: Sendable {
    var storage: String
    var key: String
    var url: String
}

/// Where attachment bytes live. Two implementations: ``LocalMediaStore`` (the default) and
/// ``CloudinaryStore``.
protocol MediaStore: Sendable {
    /// Stores `bytes` of the (already validated) type `media` under a new unguessable name.
    /// Nothing is left behind when it throws. A store that retries stops once `deadline` (when
    /// the caller stops waiting) has passed.
    func store(
        _ bytes: Data, fileName: String, media: SniffedMedia, deadline: ContinuousClock.Instant?
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
