import CCurl
import Foundation
import NIOPosix
import ThreadedIO

/// One field of a `multipart/form-data` request.
public struct MultipartField: Sendable {
    public var name: String
    /// The part's bytes. libcurl reads them from here as it sends them: a file is not copied
    /// for the transfer (until the fifty-fifth session it was, twice: into an array, and into
    /// libcurl's own buffer on each attempt).
    public var value: Data
    /// Set for a file part.
    public var fileName: String?
    public var contentType: String?

    public init(name: String, value: String) {
        self.name = name
        self.value = Data(value.utf8)
    }

    public init(name: String, file: Data, fileName: String, contentType: String) {
        self.name = name
        self.value = file
        self.fileName = fileName
        self.contentType = contentType
    }
}

/// The status and body of an HTTP response.
public struct HTTPReply: Sendable {
    public var status: Int
    public var body: [UInt8]
}

/// A failed transfer (no HTTP response at all): libcurl's code and message.
public struct CurlError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Int
    public var message: String

    /// The transfer took longer than its timeout.
    public var isTimeout: Bool { self.code == Int(CURLE_OPERATION_TIMEDOUT.rawValue) }

    public var description: String { "curl error \(self.code): \(self.message)" }
}

/// HTTP requests through libcurl. Each request owns one easy handle from creation to cleanup,
/// and runs on this client's own thread pool: libcurl's blocking calls never run on an event loop
/// or on the cooperative pool.
public final class CurlClient: Sendable {
    private let pool: NIOThreadPool
    /// The longest reply body read. A longer one fails the call with a ``CurlError`` (libcurl's
    /// write error, "the reply is longer than ... bytes") once this much has come: the services this client calls
    /// answer a few kilobytes of JSON, and a misconfigured endpoint or proxy streaming without
    /// end would otherwise be held in memory until the timeout (until the fifty-ninth session;
    /// a review). libcurl's own `CURLOPT_MAXFILESIZE` checks a declared length only.
    public let maximumReplyBytes: Int

    /// `curl_global_init` must run once, before any other call, and is not thread-safe.
    private static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    public init(threads: Int = 4, maximumReplyBytes: Int = 1 << 20) {
        _ = Self.initialized
        self.maximumReplyBytes = maximumReplyBytes
        self.pool = NIOThreadPool(numberOfThreads: threads)
        self.pool.start()
    }

    deinit {
        self.pool.shutdownGracefully { _ in }
    }

    /// POSTs `fields` as `multipart/form-data` to `url`; a call that does not finish within
    /// `timeout` fails with a ``CurlError`` whose `isTimeout` is true. The time counts from the
    /// call, so a wait for one of the pool's threads counts too: until the forty-fifth session the
    /// transfer got the whole `timeout` once it had a thread, and a call that had waited ran past
    /// its caller's deadline (review).
    public func postMultipart(url: String, fields: [MultipartField], timeout: Duration) async throws -> HTTPReply {
        let deadline = ContinuousClock.now + timeout
        return try await self.pool.runIfActive {
            let left = Backoff.milliseconds(ContinuousClock.now.duration(to: deadline))
            guard left > 0 else {
                throw CurlError(
                    code: Int(CURLE_OPERATION_TIMEDOUT.rawValue), message: "timed out waiting for a transfer thread")
            }
            return try Self.perform(
                url: url, fields: fields, timeoutMilliseconds: left, maximumReplyBytes: self.maximumReplyBytes)
        }
    }

    /// The reply's bytes as libcurl hands them over, up to `limit`. Used on the transfer's
    /// thread only, within `curl_easy_perform`.
    private final class Sink {
        let limit: Int
        var bytes: [UInt8] = []
        var overflowed = false

        init(limit: Int) { self.limit = limit }

        /// Keeps `chunk`; false (the transfer is to stop) when the reply would pass `limit`.
        func append(_ chunk: UnsafeBufferPointer<UInt8>) -> Bool {
            guard self.bytes.count + chunk.count <= self.limit else {
                self.overflowed = true
                return false
            }
            self.bytes.append(contentsOf: chunk)
            return true
        }
    }

    /// One part's bytes as libcurl reads them, from `offset` on. Used on the transfer's thread
    /// only, within `curl_easy_perform`.
    private final class PartReader {
        let bytes: Data
        var offset = 0

        init(_ bytes: Data) { self.bytes = bytes }

        /// Copies the next bytes, at most `capacity`, to `buffer`; how many.
        func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
            let count = min(capacity, self.bytes.count - self.offset)
            guard count > 0 else { return 0 }
            self.bytes.withUnsafeBytes { source in
                buffer.copyMemory(from: source.baseAddress! + self.offset, byteCount: count)
            }
            self.offset += count
            return count
        }
    }

    /// Adds `field` to `mime`, its bytes read by libcurl from `reader` when it sends them.
    private static func add(_ field: MultipartField, reading reader: PartReader, to mime: OpaquePointer?) -> CURLcode {
        let part = curl_mime_addpart(mime)
        var status = curl_mime_name(part, field.name)
        if status == CURLE_OK {
            status = curl_mime_data_cb(
                part, curl_off_t(reader.bytes.count),
                { buffer, size, count, context in
                    guard let buffer, let context else { return Int(CURL_READFUNC_ABORT) }
                    return Unmanaged<PartReader>.fromOpaque(context).takeUnretainedValue().read(
                        into: buffer, capacity: size * count)
                },
                { context, offset, origin in
                    // libcurl rewinds a part (to 0) to send it again, as after a redirect.
                    guard let context, origin == SEEK_SET else { return CURL_SEEKFUNC_CANTSEEK }
                    let reader = Unmanaged<PartReader>.fromOpaque(context).takeUnretainedValue()
                    guard offset >= 0, offset <= reader.bytes.count else { return CURL_SEEKFUNC_FAIL }
                    reader.offset = Int(offset)
                    return CURL_SEEKFUNC_OK
                },
                nil, Unmanaged.passUnretained(reader).toOpaque())
        }
        if status == CURLE_OK, let fileName = field.fileName { status = curl_mime_filename(part, fileName) }
        if status == CURLE_OK, let contentType = field.contentType { status = curl_mime_type(part, contentType) }
        return status
    }

    private static func perform(
        url: String, fields: [MultipartField], timeoutMilliseconds: Int, maximumReplyBytes: Int
    ) throws -> HTTPReply {
        guard let handle = curl_easy_init() else { throw CurlError(code: -1, message: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        let mime = curl_mime_init(handle)
        defer { curl_mime_free(mime) }
        // The readers live until the transfer is over: libcurl holds unretained pointers to them.
        let readers = fields.map { PartReader($0.value) }
        defer { withExtendedLifetime(readers) {} }
        for (field, reader) in zip(fields, readers) {
            let status = Self.add(field, reading: reader, to: mime)
            guard status == CURLE_OK else {
                throw CurlError(code: Int(status.rawValue), message: String(cString: curl_easy_strerror(status)))
            }
        }
        let sink = Sink(limit: maximumReplyBytes)
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            // curl keeps the buffer's address until the handle is cleaned up; the pointer is
            // valid only in this closure, so curl is told to forget it before the closure ends.
            defer { _ = messenger_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, nil) }
            var status = messenger_curl_setopt_string(handle, CURLOPT_URL, url)
            if status == CURLE_OK {
                status = messenger_curl_setopt_pointer(handle, CURLOPT_MIMEPOST, UnsafeMutableRawPointer(mime))
            }
            if status == CURLE_OK { status = messenger_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMilliseconds) }
            if status == CURLE_OK { status = messenger_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1) }
            if status == CURLE_OK {
                status = messenger_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorPointer.baseAddress)
            }
            if status == CURLE_OK { status = messenger_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque()) }
            if status == CURLE_OK {
                status = messenger_curl_setopt_write_function(handle) { data, size, count, context in
                    guard let data, let context else { return 0 }
                    let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
                    let length = size * count
                    let kept = data.withMemoryRebound(to: UInt8.self, capacity: length) {
                        sink.append(UnsafeBufferPointer(start: $0, count: length))
                    }
                    return kept ? length : 0  // anything but `length` ends the transfer
                }
            }
            guard status == CURLE_OK else { return status }
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            if sink.overflowed {
                throw CurlError(
                    code: Int(CURLE_WRITE_ERROR.rawValue), message: "the reply is longer than \(maximumReplyBytes) bytes")
            }
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CurlError(
                code: Int(code.rawValue), message: detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
        }
        var status = 0
        _ = messenger_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPReply(status: status, body: sink.bytes)
    }
}
