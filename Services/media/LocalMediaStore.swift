import Foundation
import MessengerContracts
import NIOPosix

/// Files on the local disk, under `<directory>/<token>/<file name>`, served read-only by the
/// gateway at `/media/<token>/<file name>`. A file is written to a temporary name in its
/// directory and renamed into place, so a reader never sees half a file and a failure leaves
/// nothing behind. The disk calls run on NIO's blocking thread pool.
struct LocalMediaStore: MediaStore {
    let directory: URL

    init(directory: String) {
        self.directory = URL(fileURLWithPath: directory, isDirectory: true).standardizedFileURL
    }

    func store(_ bytes: Data, fileName: String, media: SniffedMedia) async throws -> StoredFile {
        let token = unguessableToken()
        let name = Self.storedName(fileName, media: media)
        let folder = self.directory.appendingPathComponent(token, isDirectory: true)
        try await NIOThreadPool.singleton.runIfActive {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let temporary = folder.appendingPathComponent(".\(name).partial")
            do {
                try bytes.write(to: temporary, options: [.withoutOverwriting])
                try FileManager.default.moveItem(at: temporary, to: folder.appendingPathComponent(name))
            } catch {
                try? FileManager.default.removeItem(at: folder)
                throw error
            }
        }
        return StoredFile(storage: "local", key: "\(token)/\(name)", url: "/media/\(token)/\(name)")
    }

    func delete(key: String, media type: String) async throws {
        guard let token = key.split(separator: "/").first, token.count == 32 else { return }
        let folder = self.directory.appendingPathComponent(String(token), isDirectory: true)
        try await NIOThreadPool.singleton.runIfActive {
            if FileManager.default.fileExists(atPath: folder.path) { try FileManager.default.removeItem(at: folder) }
        }
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
