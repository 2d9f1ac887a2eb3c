import Foundation
import Glibc
import MessengerHTTP
import Synchronization
import TestSupport
import Testing

/// ``CurlClient``: what its requests carry, and their time limits.
@Suite("libcurl client", .serialized, .timeLimit(.minutes(1)))
struct CurlClientTests {
    @Test("a call's timeout counts its wait for one of the pool's threads")
    func timeoutCountsTheWaitForAThread() async throws {
        // The first call's connection is accepted and never answered.
        let listener = try SilentListener()
        defer { listener.close() }
        let arrived = Flag()
        async let served: Void = listener.serve(1) { _, _ in
            arrived.set()
            usleep(9_000_000)  // past the first call's 8 s
        }
        let client = CurlClient(threads: 1)
        let url = "http://127.0.0.1:\(listener.port)/upload"
        @Sendable func call(timeout: Duration) async -> (any Error)? {
            do {
                _ = try await client.postMultipart(url: url, fields: [MultipartField(name: "a", value: "b")], timeout: timeout)
                return nil
            } catch {
                return error
            }
        }
        // 8 s: the second call's 1 s must be over before the thread is free, and on a machine
        // busy with the whole suite the first call's connection once came 2.5 s after its start
        // (with 3 s, the second call then got the thread with 0.5 s left).
        async let first = call(timeout: .seconds(8))
        // The second call starts once the first holds the pool's only thread (its connection
        // came): a fixed pause of 100 ms was not always enough on a loaded machine, and the
        // second call took the thread first (a CI run).
        #expect(await TestHelpers.eventually(timeout: .seconds(20)) { arrived.isSet })
        // Its 1 s is over by the time the only thread is free, after the first call's 8 s: it
        // fails without a transfer. Until the forty-fifth session it got its whole 1 s then, and
        // ended a second after its caller's deadline.
        async let second = call(timeout: .seconds(1))
        let (one, two) = await (first, second)
        await served
        #expect((one as? CurlError)?.isTimeout == true, "\(String(describing: one))")
        let error = try #require(two as? CurlError)
        #expect(error.isTimeout)
        #expect(error.message == "timed out waiting for a transfer thread", "\(error)")
    }

    @Test("a multipart request carries each part's bytes as they are, a file's and an empty field's")
    func multipartCarriesTheBytes() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        // 3 MiB that no two offsets repeat in the same way, so a part sent from the wrong offset
        // (a read callback's slip) cannot go unseen.
        var generator = SystemRandomNumberGenerator()
        var words = [UInt64](repeating: 0, count: (3 << 20) / 8)
        for index in words.indices { words[index] = generator.next() }
        let file = words.withUnsafeBytes { Data($0) }
        let received = ReceivedRequest()
        async let served: Void = listener.serve(1) { _, connection in
            received.set(SilentListener.readRequest(connection))
            SilentListener.write(connection, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        }
        let reply = try await CurlClient(threads: 1).postMultipart(
            url: "http://127.0.0.1:\(listener.port)/upload",
            fields: [
                MultipartField(name: "timestamp", value: "1700000000"), MultipartField(name: "empty", value: ""),
                MultipartField(name: "file", file: file, fileName: "a.bin", contentType: "application/octet-stream"),
            ],
            timeout: .seconds(20))
        await served
        #expect(reply.status == 200)
        #expect(reply.body == Array("ok".utf8))
        let (head, body) = try #require(received.value)
        #expect(head.lowercased().contains("content-length: \(body.count)"), "\(head)")
        #expect(!head.lowercased().contains("chunked"), "\(head)")
        let text = String(decoding: body, as: UTF8.self)
        #expect(text.contains("name=\"timestamp\"\r\n\r\n1700000000\r\n"))
        #expect(text.contains("name=\"empty\"\r\n\r\n\r\n"))
        let marker = Data("filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        let start = try #require(body.range(of: marker)).upperBound
        #expect(body.count >= start + file.count)
        #expect(body[start..<start + file.count] == file)
        #expect(body[(start + file.count)...].starts(with: Data("\r\n--".utf8)))
    }

    @Test("a reply longer than the client's limit fails the call once the limit is passed, without a declared length")
    func replyLongerThanTheLimit() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let written = Mutex(0)
        async let served: Void = listener.serve(1) { _, connection in
            _ = SilentListener.readRequest(connection)
            // Chunked, so libcurl knows no length beforehand: 64 MiB in 64 KiB chunks, until the
            // client stops reading.
            SilentListener.write(connection, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            let chunk = Array(("10000\r\n" + String(repeating: "x", count: 65536) + "\r\n").utf8)
            for _ in 0..<1024 {
                let sent = chunk.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent == chunk.count else { return }
                written.withLock { $0 += 65536 }
            }
        }
        let client = CurlClient(threads: 1, maximumReplyBytes: 1 << 20)
        do {
            let reply = try await client.postMultipart(
                url: "http://127.0.0.1:\(listener.port)/upload", fields: [MultipartField(name: "a", value: "b")],
                timeout: .seconds(30))
            Issue.record("a reply of \(reply.body.count) bytes was read whole")
        } catch let error as CurlError {
            #expect(error.message == "the reply is longer than 1048576 bytes", "\(error)")
        }
        await served
        #expect(written.withLock { $0 } < 64 << 20, "the server wrote the whole reply: the client read on")
    }
}

/// A flag a test server's thread raises for the test.
private final class Flag: Sendable {
    private let raised = Mutex(false)

    var isSet: Bool { self.raised.withLock { $0 } }

    func set() { self.raised.withLock { $0 = true } }
}

/// What a test server read, handed from its thread to the test.
private final class ReceivedRequest: Sendable {
    private let stored = Mutex<(head: String, body: Data)?>(nil)

    var value: (head: String, body: Data)? { self.stored.withLock { $0 } }

    func set(_ value: (head: String, body: Data)?) { self.stored.withLock { $0 = value } }
}

extension SilentListener {
    /// Reads one HTTP request with a `Content-Length` from `connection`: its head and its body
    /// (nil when it closes or stalls first). Answers `Expect: 100-continue` at once.
    static func readRequest(_ connection: Int32) -> (head: String, body: Data)? {
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let separator = Data("\r\n\r\n".utf8)
        while received.range(of: separator) == nil {
            let count = recv(connection, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            received.append(contentsOf: buffer.prefix(count))
        }
        let end = received.range(of: separator)!
        let head = String(decoding: received[..<end.lowerBound], as: UTF8.self)
        var body = Data(received[end.upperBound...])
        let lines = head.lowercased().components(separatedBy: "\r\n")
        guard let lengthLine = lines.first(where: { $0.hasPrefix("content-length:") }),
            let length = Int(lengthLine.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
        else { return nil }
        if lines.contains(where: { $0.hasPrefix("expect:") && $0.contains("100-continue") }) {
            self.write(connection, "HTTP/1.1 100 Continue\r\n\r\n")
        }
        while body.count < length {
            let count = recv(connection, &buffer, min(buffer.count, length - body.count), 0)
            guard count > 0 else { return nil }
            body.append(contentsOf: buffer.prefix(count))
        }
        return (head, body)
    }
}
