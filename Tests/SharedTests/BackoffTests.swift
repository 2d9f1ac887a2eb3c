import Testing
import ThreadedIO

@Suite("Reconnect backoff")
struct BackoffTests {
    @Test("delays grow and stay under the cap, and reset starts over")
    func growsAndCaps() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2))
        let delays = (0..<10).map { _ in backoff.next() }
        #expect(delays[0] >= .milliseconds(50) && delays[0] <= .milliseconds(100))
        #expect(delays.allSatisfy { $0 <= .seconds(2) })
        #expect(delays[9] >= .seconds(1))
        backoff.reset()
        #expect(backoff.next() <= .milliseconds(100))
    }

    @Test("a duration in milliseconds saturates instead of trapping")
    func millisecondsSaturate() {
        #expect(Backoff.milliseconds(.milliseconds(1_500)) == 1_500)
        #expect(Backoff.milliseconds(.seconds(Int64.max)) > 9_000_000_000_000_000_000)
        #expect(Backoff.milliseconds(.seconds(Int64.min)) < -9_000_000_000_000_000_000)
    }

    @Test("an outage is warned about at its first failure, then every 30th")
    func warningsDuringAnOutage() {
        let warned = (1...95).filter { ReconnectLoop.isWorthAWarning(failuresInARow: $0) }
        #expect(warned == [1, 30, 60, 90])
    }
}
