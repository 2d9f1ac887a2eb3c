import Foundation
import Logging
import MessengerContracts
import NIOPosix

/// Files on the local disk, under `<directory>/<token>/<file name>`, served read-only by the
/// gateway at `/media/<token>/<file name>`. A file is written to a temporary name in its
/// directory and renamed into place, so a reader never sees half a file and a failure leaves
/// nothing behind. The disk calls run on NIO's blocking thread pool.
///
/// A stored file is on the disk before ``store(_:as:fileName:media:deadline:)`` returns: the file, then its
/// folder (the rename) and the folder's parent (the new folder) are flushed (`fsync`). Until
/// the forty-first session nothing was, so the upload's row, committed right after, and the
/// message it was then bound to could outlive a crash of the machine that lost the file.
///
/// A disk that refuses the file (full, read-only, an I/O error) is the store being unavailable:
/// the client is answered `unavailable`, and the error, which names the path, goes to the log
/// only. Until the fifty-fourth session it reached the RPC server as an unknown error, answered
/// 500 `internal`, a bug, which a client does not retry (a review).
struct LocalMediaStore: MediaStore {
    let directory: URL
    let logger: Logger

    init(directory: String, logger: Logger) {
        self.directory = URL(fileURLWithPath: directory, isDirectory: true).standardizedFileURL
        self.logger = logger
    }

    func plan(fileName: String, media: SniffedMedia) -> PlannedFile {
        let token = unguessableToken()
        return PlannedFile(storage: "local", key: "\(token)/\(Self.storedName(fileName, media: media))", token: token)
    }

    func store(
        _ bytes: Data, as planned: PlannedFile, fileName: String, media: SniffedMedia, deadline: ContinuousClock.Instant?
    ) async throws -> StoredFile {
        let token = planned.token
        let name = Self.storedName(fileName, media: media)
        let folder = self.directory.appendingPathComponent(token, isDirectory: true)
        do {
            try await NIOThreadPool.singleton.runIfActive {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let temporary = folder.appendingPathComponent(".\(name).partial")
                do {
                    try Self.writeDurably(bytes, to: temporary)
                    try FileManager.default.moveItem(at: temporary, to: folder.appendingPathComponent(name))
                    try Self.flushDirectory(folder)
                    try Self.flushDirectory(self.directory)
                } catch {
                    try? FileManager.default.removeItem(at: folder)
                    throw error
                }
            }
        } catch let error as ServiceError {
            throw error
        } catch {
            self.logger.error(
                "the local file store refused a file", metadata: ["error": "\(LoggedError(error))", "key": "\(planned.key)"])
            throw ServiceError.unavailable("the file store is unavailable")
        }
        return StoredFile(storage: "local", key: "\(token)/\(name)", url: "/media/\(token)/\(name)")
    }

    func delete(key: String, media type: String, deadline: ContinuousClock.Instant?) async throws {
        guard let token = key.split(separator: "/").first, token.count == 32 else { return }
        let folder = self.directory.appendingPathComponent(String(token), isDirectory: true)
        try await NIOThreadPool.singleton.runIfActive {
            if FileManager.default.fileExists(atPath: folder.path) { try FileManager.default.removeItem(at: folder) }
        }
    }

    /// Writes `bytes` to a new file at `url` and flushes them to the disk.
    private static func writeDurably(_ bytes: Data, to url: URL) throws {
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: false)
        defer { try? handle.close() }
        try handle.write(contentsOf: bytes)
        try handle.synchronize()
    }

    /// Flushes a directory's entries (a file renamed or created in it) to the disk.
    private static func flushDirectory(_ url: URL) throws {
        let descriptor = open(url.path, O_RDONLY | O_DIRECTORY)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(descriptor) }
        guard fsync(descriptor) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// The name on disk and in the URL: the sanitised name in ASCII (anything else, spaces
    /// included, as `_`, so the URL needs no escaping), ending in the extension of the detected
    /// type.
    static func storedName(_ fileName: String, media: SniffedMedia) -> String {
        var base = String(
            MediaSniffer.sanitizeFileName(fileName).unicodeScalars.map { scalar -> Character in
                scalar.isASCII && scalar != " " ? Character(scalar) : "_"
            })
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { base = String(base[..<dot]) }
        return "\(base.prefix(80)).\(media.fileExtension)"
    }
}
