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
        let start = ContinuousClock.now
        @Sendable func call() async -> (error: (any Error)?, ended: Duration) {
            do {
                _ = try await client.postMultipart(
                    url: url, fields: [MultipartField(name: "a", value: "b")], timeout: .seconds(2))
                return (nil, start.duration(to: .now))
            } catch {
                return (error, start.duration(to: .now))
            }
        }
        async let first = call()
        try await Task.sleep(for: .milliseconds(100))
        // Waits for the only thread until the first call's transfer times out, at 2 s.
        async let second = call()
        let (one, two) = await (first, second)
        #expect((one.error as? CurlError)?.isTimeout == true, "\(String(describing: one.error))")
        #expect((two.error as? CurlError)?.isTimeout == true, "\(String(describing: two.error))")
        // Its own 2 s end at 2.1 s; with a full timeout after the wait it ended at 4 s.
        #expect(two.ended < .milliseconds(3_500), "the second call ended \(two.ended) after the start")
    }
}
