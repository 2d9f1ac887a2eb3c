import Foundation
import MessengerServiceKit

/// The media service's settings, read once at start.
struct MediaSettings: Sendable {
    /// The largest file accepted (`MEDIA_MAX_UPLOAD_BYTES`, default 25 MiB).
    var maximumUpload: Int
    /// Where the local store keeps files (`MEDIA_DIR`, default `./media`); the gateway serves
    /// the same directory under `/media/`.
    var directory: String
    /// Uploads never bound to a message are deleted after this (`MEDIA_UNBOUND_TTL_SECONDS`,
    /// default one day), checked every `MEDIA_CLEANUP_INTERVAL_SECONDS` (default 3600).
    var unboundLifetime: Duration
    var cleanupInterval: Duration
    /// The bytes a user's uploads not yet bound to a message may hold in all
    /// (`MEDIA_UNBOUND_BYTES_PER_USER`, default 256 MiB): past it an upload is `rate_limited`
    /// until some are bound or expire.
    var unboundBytesPerUser: Int64
    /// Set when Cloudinary is configured; the local store is used otherwise.
    var cloudinary: CloudinaryConfiguration?

    init(environment: ServiceEnvironment) throws {
        self.maximumUpload = try environment.int("MEDIA_MAX_UPLOAD_BYTES", default: 25 * 1024 * 1024, in: 1...(64 * 1024 * 1024))
        self.directory = environment.string("MEDIA_DIR", default: "media")
        self.unboundLifetime = .seconds(try environment.int("MEDIA_UNBOUND_TTL_SECONDS", default: 86_400, in: 1...(365 * 86_400)))
        self.cleanupInterval = .seconds(try environment.int("MEDIA_CLEANUP_INTERVAL_SECONDS", default: 3600, in: 1...86_400))
        self.unboundBytesPerUser = Int64(
            try environment.int("MEDIA_UNBOUND_BYTES_PER_USER", default: 256 * 1024 * 1024, in: 1...(1 << 40)))
        // A file larger than the bound would be refused for ever, as if for a while.
        guard self.unboundBytesPerUser >= Int64(self.maximumUpload) else {
            throw ConfigurationError(
                variable: "MEDIA_UNBOUND_BYTES_PER_USER", problem: "must be at least MEDIA_MAX_UPLOAD_BYTES")
        }
        self.cloudinary = try CloudinaryConfiguration(environment: environment)
        if self.cloudinary == nil { try Self.checkWritable(self.directory) }
    }

    /// The local store's directory, created if missing, must be writable: a directory that is
    /// not stops the service at start naming `MEDIA_DIR`, instead of failing every upload.
    static func checkWritable(_ directory: String) throws {
        let files = FileManager.default
        do {
            try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ConfigurationError(variable: "MEDIA_DIR", problem: "cannot be created: \(directory)")
        }
        guard files.isWritableFile(atPath: directory) else {
            throw ConfigurationError(variable: "MEDIA_DIR", problem: "cannot be written: \(directory)")
        }
    }
}

/// Cloudinary's account and where its upload API is: `CLOUDINARY_URL`
/// (`cloudinary://<api_key>:<api_secret>@<cloud_name>`) or `CLOUDINARY_CLOUD_NAME`,
/// `CLOUDINARY_API_KEY` and `CLOUDINARY_API_SECRET`; `CLOUDINARY_UPLOAD_PREFIX` (default
/// `https://api.cloudinary.com`) points it at any server that speaks the same API;
/// `CLOUDINARY_FOLDER` puts uploads in a folder (ASCII letters, digits, `_` and `-`, joined by
/// `/`).
struct CloudinaryConfiguration: Sendable {
    var cloudName: String
    var apiKey: String
    var apiSecret: String
    var uploadPrefix: String
    var folder: String?
    var timeout: Duration
    var attempts: Int

    init?(environment: ServiceEnvironment) throws {
        if let url = environment.optional("CLOUDINARY_URL") {
            guard let components = URLComponents(string: url), components.scheme == "cloudinary",
                let key = components.user, let secret = components.password, let cloud = components.host, !cloud.isEmpty
            else {
                throw ConfigurationError(
                    variable: "CLOUDINARY_URL", problem: "must look like cloudinary://<api_key>:<api_secret>@<cloud_name>")
            }
            (self.cloudName, self.apiKey, self.apiSecret) = (cloud, key, secret.removingPercentEncoding ?? secret)
        } else if let cloud = environment.optional("CLOUDINARY_CLOUD_NAME") {
            guard let key = environment.optional("CLOUDINARY_API_KEY"), let secret = environment.optional("CLOUDINARY_API_SECRET")
            else {
                throw ConfigurationError(
                    variable: "CLOUDINARY_API_KEY", problem: "and CLOUDINARY_API_SECRET are needed with CLOUDINARY_CLOUD_NAME")
            }
            (self.cloudName, self.apiKey, self.apiSecret) = (cloud, key, secret)
        } else {
            return nil
        }
        var prefix = environment.string("CLOUDINARY_UPLOAD_PREFIX", default: "https://api.cloudinary.com")
        while prefix.hasSuffix("/") { prefix.removeLast() }
        guard let components = URLComponents(string: prefix), ["http", "https"].contains(components.scheme ?? ""),
            components.host?.isEmpty == false
        else {
            throw ConfigurationError(variable: "CLOUDINARY_UPLOAD_PREFIX", problem: "must be an http(s) URL")
        }
        self.uploadPrefix = prefix
        // Names Cloudinary keeps as they are in a `public_id` (it may rewrite others, and the
        // key recorded before an upload must be the id the file gets), its ends' slashes dropped.
        let folder = environment.optional("CLOUDINARY_FOLDER")?.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if let folder, !folder.isEmpty {
            let parts = folder.split(separator: "/", omittingEmptySubsequences: false)
            guard
                parts.allSatisfy({ part in
                    !part.isEmpty
                        && part.unicodeScalars.allSatisfy {
                            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_" || $0 == "-")
                        }
                })
            else {
                throw ConfigurationError(
                    variable: "CLOUDINARY_FOLDER", problem: "must be names of letters, digits, '_' and '-' joined by '/'")
            }
        }
        self.folder = folder?.isEmpty == false ? folder : nil
        self.timeout = try environment.milliseconds("CLOUDINARY_TIMEOUT_MS", default: 60_000)
        self.attempts = try environment.int("CLOUDINARY_ATTEMPTS", default: 3, in: 1...10)
    }
}
