import MessengerHTTP
import Testing

/// ``CurlClient``: its calls' time limits.
@Suite("libcurl client", .timeLimit(.minutes(1)))
struct CurlClientTests {
    @Test("a call's timeout counts its wait for one of the pool's threads")
    func timeoutCountsTheWaitForAThread() async throws {
        // Connections are accepted by the kernel and never answered.
        let listener = try SilentListener()
        defer { listener.close() }
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
        async let first = call(timeout: .seconds(3))
        try await Task.sleep(for: .milliseconds(100))
        // Its 1 s is over by the time the only thread is free, after the first call's 3 s: it
        // fails without a transfer. Until the forty-fifth session it got its whole 1 s then, and
        // ended a second after its caller's deadline.
        async let second = call(timeout: .seconds(1))
        let (one, two) = await (first, second)
        #expect((one as? CurlError)?.isTimeout == true, "\(String(describing: one))")
        let error = try #require(two as? CurlError)
        #expect(error.isTimeout)
        #expect(error.message == "timed out waiting for a transfer thread", "\(error)")
    }
}
