import Foundation
import Hummingbird
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import NIOCore
import NIOPosix

/// `POST /api/attachments` (multipart upload, passed on to the media service in one message)
/// and `GET /media/<token>/<name>` (the local store's files, read-only, with the type detected
/// from their bytes).
struct MediaController {
    let rpc: RPCClient
    /// Who the caller is, for the routes that need a bearer token.
    let authentication: BearerAuthMiddleware
    /// The local store's directory (`MEDIA_DIR`), shared with the media service.
    let directory: String
    let maximumUpload: Int
    /// How long the body may take to arrive, whole. The slot is held while it is read, and the
    /// idle timeout alone let a client that sent a byte a minute hold it for good (a review).
    let bodyTimeout: Duration
    /// Uploads under way, per user and in all (``UploadSlots``).
    let slots = UploadSlots()

    func addRoutes(to router: Router<GatewayRequestContext>) {
        router.group("api").add(middleware: self.authentication).post("attachments") { request, context in
            try await self.upload(request, context)
        }
        router.get("media/:token/:name") { request, context in
            try await self.serve(request, context)
        }
    }

    private func upload(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        let caller = try context.requireUser()
        guard let boundary = request.headers[.contentType].flatMap(MultipartForm.boundary(contentType:)) else {
            throw RESTError.malformed("the body must be multipart/form-data")
        }
        // A slot before the body is read: a refused upload holds nothing.
        do {
            return try await self.slots.withSlot(for: caller.lowercasedText) { slot in
                try await self.store(request, boundary: boundary, caller: caller, slot: slot)
            }
        } catch let error as ServiceError {
            throw RESTError(error)
        }
    }

    private func store(_ request: Request, boundary: String, caller: UUID, slot: UploadSlot) async throws -> Response {
        // The file plus room for the form's own headers.
        let limit = self.maximumUpload + 64 * 1024
        let buffer = try await withDeadline(.now + self.bodyTimeout, waitingFor: "the upload's body") {
            try await slot.readBody { received in
                var buffer = ByteBuffer()
                for try await part in request.body {
                    guard buffer.readableBytes + part.readableBytes <= limit else {
                        throw NIOTooManyBytesError(maxBytes: limit)
                    }
                    buffer.writeImmutableBuffer(part)
                    received(part.readableBytes)
                }
                return buffer
            }
        }
        // Copying and parsing up to 25 MiB: on NIO's thread pool, off the event loops, like the
        // upload's encoding.
        let parsed = try await NIOThreadPool.singleton.runIfActive {
            MultipartForm(body: Data(buffer: buffer), boundary: boundary)
        }
        guard let form = parsed else {
            throw RESTError.malformed("the multipart body is malformed")
        }
        // A `file` part without a file name is taken too (curl's `-F 'file=<photo.png'`, a client
        // that sends the bytes alone): until the fifty-eighth session it was "no file field" (a
        // review). One with a name wins when a form has both.
        let files = form.parts.filter { $0.name == "file" }
        guard let file = files.first(where: { $0.fileName != nil }) ?? files.first else {
            throw RESTError.malformed("the form has no file field")
        }
        guard file.body.count <= self.maximumUpload else {
            throw RESTError(.init(.payloadTooLarge, "the file is larger than \(self.maximumUpload) bytes"))
        }
        do {
            let reply = try await MediaUploads(rpc: self.rpc).store(
                UploadRequest(fileName: file.fileName ?? "file", declaredContentType: file.contentType, data: file.body),
                actor: caller)
            return try JSONBody.response(reply, status: .created)
        } catch let error as ServiceError {
            throw RESTError(error)
        }
    }

    private func serve(_ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        guard let token = context.parameters.get("token"), let name = context.parameters.get("name"),
            token.count == 32, token.allSatisfy(\.isHexDigit),
            !name.hasPrefix("."), (1...120).contains(name.count),
            name.unicodeScalars.allSatisfy({
                $0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)
            })
        else { throw RESTError(.notFound("no such file")) }
        let path = URL(fileURLWithPath: self.directory, isDirectory: true).appendingPathComponent(token)
            .appendingPathComponent(name).path
        let found = try? await NIOThreadPool.singleton.runIfActive { () -> (header: Data, size: Int)? in
            guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
            defer { try? handle.close() }
            let size = try handle.seekToEnd()
            try handle.seek(toOffset: 0)
            return (try handle.read(upToCount: MediaSniffer.headerLength) ?? Data(), Int(size))
        }
        guard let (header, size) = found ?? nil else { throw RESTError(.notFound("no such file")) }
        let contentType = MediaSniffer.sniffHeader(header)?.contentType ?? "application/octet-stream"
        // A file's URL names its content for good (its token is new for every upload): the
        // token is its validator.
        let etag = "\"\(token)\""
        var headers = Self.headers(contentType: contentType)
        headers[.eTag] = etag
        headers[.acceptRanges] = "bytes"
        if let match = request.headers[.ifNoneMatch],
            match.split(separator: ",").contains(where: {
                ["*", etag, "W/" + etag].contains($0.trimmingCharacters(in: .whitespaces))
            })
        {
            return Response(status: .notModified, headers: headers)
        }
        // HEAD (routed here as GET) gets the headers without the file being read.
        if request.method == .head {
            return Response(status: .ok, headers: headers, body: ResponseBody(contentLength: size) { _ in })
        }
        let ifRange = request.headers[.ifRange]
        switch ifRange == nil || ifRange == etag ? ByteRange(header: request.headers[.range], size: size) : .whole {
        case .whole:
            return Response(status: .ok, headers: headers, body: try await Self.load(path, range: nil, context: context))
        case .part(let bytes):
            headers[.contentRange] = "bytes \(bytes.lowerBound)-\(bytes.upperBound)/\(size)"
            let body = try await Self.load(path, range: bytes, context: context)
            return Response(status: .partialContent, headers: headers, body: body)
        case .unsatisfiable:
            headers[.contentRange] = "bytes */\(size)"
            return Response(status: .rangeNotSatisfiable, headers: headers)
        }
    }

    /// The file at `path` (or its `range`) as a response body. A file deleted since its header
    /// was read (its message deleted) is "no such file", as one deleted before: Hummingbird
    /// answers it with its own 404, which the error middleware would call "no such route".
    /// Hummingbird opens the file only when it writes the body: one deleted after this look and
    /// before that gets its headers and a body cut short (the client sees a failed download).
    static func load(_ path: String, range: ClosedRange<Int>?, context: GatewayRequestContext) async throws
        -> ResponseBody
    {
        do {
            if let range { return try await FileIO().loadFile(path: path, range: range, context: context) }
            return try await FileIO().loadFile(path: path, context: context)
        } catch let error as HTTPError where error.status == .notFound {
            throw RESTError(.notFound("no such file"))
        }
    }

    /// The headers of every media file response. Browsers may keep a file (`private`), shared
    /// caches may not: a deleted message's file must stop being served. Opened on its own, a
    /// file runs nothing in the gateway's origin: its type comes from its bytes (`nosniff`), a
    /// document gets an empty, sandboxed policy, and a PDF (whose viewers refuse a sandbox) is
    /// downloaded rather than shown.
    private static func headers(contentType: String) -> HTTPFields {
        var headers: HTTPFields = [
            .contentType: contentType, .init("X-Content-Type-Options")!: "nosniff",
            .cacheControl: "private, max-age=31536000, immutable",
        ]
        if contentType == "application/pdf" {
            headers[.contentDisposition] = "attachment"
        } else {
            headers[.contentSecurityPolicy] = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
        }
        return headers
    }
}
