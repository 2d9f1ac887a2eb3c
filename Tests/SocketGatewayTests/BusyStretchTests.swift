import Testing

@testable import SocketGateway

/// When a consumer on an event loop sleeps to let the loop's I/O in (``BusyStretch``).
@Suite("A consumer's stretches of back-to-back work")
struct BusyStretchTests {
    @Test("messages that were ready one after the other for 20 ms end in a pause, and the stretch starts again")
    func backToBack() async {
        var stretch = BusyStretch()
        let start = ContinuousClock.now
        var now = start
        for _ in 0..<45 {
            await stretch.pauseIfLong(now: now)
            now += .milliseconds(1)  // each message's work
            stretch.done(now: now)
            now += .microseconds(10)  // the next one was waiting
        }
        #expect(stretch.pauses == 2, "after 20 ms, then after 20 ms more")
    }

    @Test("a consumer that waits for each message never pauses")
    func keepingUp() async {
        var stretch = BusyStretch()
        var now = ContinuousClock.now
        for _ in 0..<100 {
            await stretch.pauseIfLong(now: now)
            now += .milliseconds(1)
            stretch.done(now: now)
            now += .milliseconds(1)  // it waited for the next one
        }
        #expect(stretch.pauses == 0)
    }
}
