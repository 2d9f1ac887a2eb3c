import Crypto
import Foundation
import Logging
import MessengerContracts
import MessengerHTTP
import ThreadedIO

/// Cloudinary's upload API through libcurl: a signed `multipart/form-data` upload to
/// `<prefix>/v1_1/<cloud>/<resource_type>/upload`, the `resource_type` chosen from the content
/// (`image`, `video` for video and audio, `raw` otherwise); `secure_url` and `public_id` are kept.
///
/// The signature is Cloudinary's: the SHA-1 (hex) of the signed parameters (all but `file`,
/// `api_key`, `resource_type` and `cloud_name`), sorted by name, joined as `k=v` with `&`,
/// followed by the API secret. A 5xx or a failed transfer is retried with backoff, within the
/// caller's deadline (no attempt outlasts it); a 400, 413, 415 or 422 is the file's problem
/// (`invalid_argument` with Cloudinary's message); any other 4xx, and a failure of every attempt,
/// is `unavailable`.
struct CloudinaryStore: MediaStore {
    let configuration: CloudinaryConfiguration
    let curl: CurlClient
    let logger: Logger

    /// The key is the file's `public_id`: the token, after the folder when one is set
    /// (`CLOUDINARY_FOLDER`). It is sent whole as the `public_id`, with no `folder` parameter:
    /// how Cloudinary joins a `folder` to the id differs between its fixed and dynamic folder
    /// modes (in the latter, every account's since June 2024, folders are apart from ids), and
    /// the key recorded before the upload, which the clean-up destroys after a crash, must be
    /// the id Cloudinary gives the file. Until the fifty-fourth session the folder went apart
    /// (a review).
    ///
    /// A `raw` file's id ends in its extension (`<token>.pdf`): Cloudinary keeps an image's or a
    /// video's format apart from its id and adds it to the URL, but a raw file's URL is its id as
    /// given, and Cloudinary serves it with the type its extension names. Without one, a PDF or a
    /// text file came back as `application/octet-stream` with no extension (until the fifty-ninth
    /// session; a review).
    func plan(fileName: String, media: SniffedMedia) -> PlannedFile {
        let token = unguessableToken()
        let folder = self.configuration.folder.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "/")) } ?? ""
        let name = Self.resourceType(media) == "raw" ? "\(token).\(media.fileExtension)" : token
        return PlannedFile(storage: "cloudinary", key: folder.isEmpty ? name : "\(folder)/\(name)", token: token)
    }

    func store(
        _ bytes: Data, as planned: PlannedFile, fileName: String, media: SniffedMedia, deadline: ContinuousClock.Instant?
    ) async throws -> StoredFile {
        let resourceType = Self.resourceType(media)
        let parameters = ["public_id": planned.key, "timestamp": String(Int(Date().timeIntervalSince1970))]
        let reply = try await self.call(
            "\(resourceType)/upload", parameters: parameters,
            file: MultipartField(
                name: "file", file: bytes, fileName: LocalMediaStore.storedName(fileName, media: media),
                contentType: media.contentType),
            deadline: deadline)
        struct Uploaded: Decodable {
            var public_id: String
            var secure_url: String
        }
        guard let uploaded = try? JSONDecoder().decode(Uploaded.self, from: Data(reply.body)) else {
            throw ServiceError.unavailable("Cloudinary answered an upload without secure_url")
        }
        guard uploaded.public_id == planned.key else {
            // Not the file the records name: taken back, so that none is left that nothing names.
            self.logger.error(
                "Cloudinary stored an upload under another public_id than asked",
                metadata: ["asked": "\(planned.key)", "given": "\(uploaded.public_id)"])
            try? await self.delete(key: uploaded.public_id, media: media.type, deadline: deadline)
            throw ServiceError.unavailable("the file store is unavailable")
        }
        return StoredFile(storage: "cloudinary", key: uploaded.public_id, url: uploaded.secure_url)
    }

    /// Cloudinary's `destroy`, with `invalidate` so that its CDN stops serving the file too (a
    /// deleted message's photo should not stay reachable from a cache).
    func delete(key: String, media type: String, deadline: ContinuousClock.Instant?) async throws {
        let resourceType = type == "IMAGE" ? "image" : (type == "VIDEO" || type == "AUDIO") ? "video" : "raw"
        _ = try await self.call(
            "\(resourceType)/destroy",
            parameters: ["public_id": key, "invalidate": "true", "timestamp": String(Int(Date().timeIntervalSince1970))],
            file: nil, deadline: deadline)
    }

    static func resourceType(_ media: SniffedMedia) -> String {
        switch media.type {
        case "IMAGE": "image"
        case "VIDEO", "AUDIO": "video"
        default: "raw"
        }
    }

    /// Cloudinary's signature of `parameters` (those that are signed) with `secret`.
    static func signature(_ parameters: [String: String], secret: String) -> String {
        let excluded: Set<String> = ["file", "api_key", "resource_type", "cloud_name", "signature"]
        let text =
            parameters.filter { !excluded.contains($0.key) && !$0.value.isEmpty }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }.joined(separator: "&") + secret
        return Insecure.SHA1.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// `deadline`: when the caller stops waiting. No attempt starts after it, and none is given
    /// longer than what is left of it: until the forty-second session, three attempts of 60 s
    /// outlasted the gateway's 120 s, and a late one stored a file nobody was told of.
    private func call(
        _ path: String, parameters: [String: String], file: MultipartField?, deadline: ContinuousClock.Instant?
    ) async throws -> HTTPReply {
        let url = "\(self.configuration.uploadPrefix)/v1_1/\(self.configuration.cloudName)/\(path)"
        var fields = parameters.sorted { $0.key < $1.key }.map { MultipartField(name: $0.key, value: $0.value) }
        fields.append(MultipartField(name: "api_key", value: self.configuration.apiKey))
        fields.append(
            MultipartField(name: "signature", value: Self.signature(parameters, secret: self.configuration.apiSecret)))
        if let file { fields.append(file) }

        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5))
        var lastProblem = "no attempt"
        for attempt in 1...self.configuration.attempts {
            var timeout = self.configuration.timeout
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                guard left > .milliseconds(100) else { break }
                timeout = min(timeout, left)
            }
            do {
                let reply = try await self.curl.postMultipart(url: url, fields: fields, timeout: timeout)
                switch reply.status {
                case 200..<300:
                    return reply
                case 420, 429:
                    lastProblem = "rate limited (HTTP \(reply.status))"
                case 401, 403:
                    // Our credentials or signature, not the client's file: the client is told the
                    // store is unavailable, and the details (which name the key) go to the log
                    // only. Until the fortieth session this was 422 with Cloudinary's text.
                    self.logger.error(
                        "Cloudinary refused our credentials or signature; check CLOUDINARY_*",
                        metadata: ["status": "\(reply.status)", "message": "\(Self.errorMessage(reply))"])
                    throw ServiceError.unavailable("the file store is unavailable")
                case 400, 413, 415, 422:
                    // The file (its format, its size, its content): the client's to fix. Over the
                    // account's plan limit, which may be under ours: 413, in our words (until the
                    // fifty-fourth session 422 with Cloudinary's; a review).
                    let message = Self.errorMessage(reply)
                    if reply.status == 413 || message.hasPrefix("File size too large") {
                        throw ServiceError(.payloadTooLarge, "the file is larger than the file store takes")
                    }
                    throw ServiceError.invalidArgument("Cloudinary refused the file: \(message)")
                case 400..<500:
                    // Any other refusal (404: a cloud or path that does not exist) is our
                    // configuration's, not the client's file: the details, which name it, go to the
                    // log only (until the forty-second session the client got them, as 422).
                    self.logger.error(
                        "Cloudinary refused the request; check CLOUDINARY_*",
                        metadata: ["status": "\(reply.status)", "message": "\(Self.errorMessage(reply))"])
                    throw ServiceError.unavailable("the file store is unavailable")
                default:
                    lastProblem = "HTTP \(reply.status): \(Self.errorMessage(reply))"
                }
            } catch let error as CurlError {
                lastProblem = error.isTimeout ? "timed out" : error.description
            }
            self.logger.warning(
                "Cloudinary call failed", metadata: ["path": "\(path)", "attempt": "\(attempt)", "problem": "\(lastProblem)"])
            if attempt < self.configuration.attempts {
                var pause = backoff.next()
                if let deadline { pause = min(pause, max(.zero, ContinuousClock.now.duration(to: deadline))) }
                try await Task.sleep(for: pause)
            }
        }
        // What went wrong (Cloudinary's text, curl's, which may name a proxy or a host) is in the
        // log above, not in the client's answer (until the forty-fifth session it was).
        throw ServiceError.unavailable("the file store is unavailable")
    }

    private static func errorMessage(_ reply: HTTPReply) -> String {
        struct Failure: Decodable {
            struct Detail: Decodable { var message: String }
            var error: Detail
        }
        let message =
            (try? JSONDecoder().decode(Failure.self, from: Data(reply.body)))?.error.message
            ?? String(decoding: reply.body.prefix(200), as: UTF8.self)
        // Cloudinary explains a bad signature with the string it signed: not for clients.
        return String(message.components(separatedBy: " String to sign").first ?? message).trimmingCharacters(in: .whitespaces)
    }
}
