import CCurl
import Foundation
import NIOPosix
import ThreadedIO

/// One field of a `multipart/form-data` request.
public struct MultipartField: Sendable {
    public var name: String
    public var value: [UInt8]
    /// Set for a file part.
    public var fileName: String?
    public var contentType: String?

    public init(name: String, value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }

    public init(name: String, file: [UInt8], fileName: String, contentType: String) {
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

    /// `curl_global_init` must run once, before any other call, and is not thread-safe.
    private static let initialized: Bool = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK

    public init(threads: Int = 4) {
        _ = Self.initialized
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
            return try Self.perform(url: url, fields: fields, timeoutMilliseconds: left)
        }
    }

    private final class Sink {
        var bytes: [UInt8] = []
    }

    private static func perform(url: String, fields: [MultipartField], timeoutMilliseconds: Int) throws -> HTTPReply {
        guard let handle = curl_easy_init() else { throw CurlError(code: -1, message: "curl_easy_init failed") }
        defer { curl_easy_cleanup(handle) }
        let mime = curl_mime_init(handle)
        defer { curl_mime_free(mime) }
        for field in fields {
            let part = curl_mime_addpart(mime)
            curl_mime_name(part, field.name)
            _ = field.value.withUnsafeBufferPointer { buffer in
                buffer.baseAddress.map { pointer in
                    pointer.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                        curl_mime_data(part, $0, buffer.count)
                    }
                } ?? curl_mime_data(part, "", 0)
            }
            if let fileName = field.fileName { curl_mime_filename(part, fileName) }
            if let contentType = field.contentType { curl_mime_type(part, contentType) }
        }
        let sink = Sink()
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
                    data.withMemoryRebound(to: UInt8.self, capacity: length) {
                        sink.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
                    }
                    return length
                }
            }
            guard status == CURLE_OK else { return status }
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CurlError(
                code: Int(code.rawValue), message: detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail)
        }
        var status = 0
        _ = messenger_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPReply(status: status, body: sink.bytes)
    }
}
