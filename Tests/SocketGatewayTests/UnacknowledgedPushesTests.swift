import Testing

@testable import SocketGateway

/// ``UnacknowledgedPushes``: which events a socket's stream pushes again, and when.
@Suite("Unacknowledged pushes")
struct UnacknowledgedPushesTests {
    /// A socket that resumed after seq 0 and was sent each `(seq, after)`: the events up to
    /// `seq`, `after` from the returned start.
    static func sent(_ sends: (seq: Int64, after: Duration)...) -> (UnacknowledgedPushes, ContinuousClock.Instant) {
        var pushes = UnacknowledgedPushes(after: 0)
        let start = ContinuousClock.now
        for send in sends { pushes.sent(through: send.seq, at: start + send.after) }
        return (pushes, start)
    }

    @Test("events are due the base wait after they went out, then after twice as long each time, up to the cap")
    func dueAfterGrowingWaits() {
        var (pushes, start) = Self.sent((12, .zero), (15, .seconds(5)))
        #expect(pushes.due(at: start + .seconds(9)) == nil)
        #expect(pushes.due(at: start + .seconds(10)) == 12)
        #expect(pushes.due(at: start + .seconds(15)) == 15)
        // Pushed again at 15 s: due 20 s later, then 40, then the 60 s cap.
        pushes.pushedAgain(through: 15, at: start + .seconds(15))
        #expect(pushes.due(at: start + .seconds(34)) == nil)
        #expect(pushes.due(at: start + .seconds(35)) == 15)
        pushes.pushedAgain(through: 15, at: start + .seconds(35))
        #expect(pushes.due(at: start + .seconds(74)) == nil)
        #expect(pushes.due(at: start + .seconds(75)) == 15)
        pushes.pushedAgain(through: 15, at: start + .seconds(75))
        #expect(pushes.due(at: start + .seconds(135)) == 15)
        #expect(pushes.rounds == 3)
    }

    /// The first version made every run one after a push again, and a run sent a moment before
    /// waited the doubled wait from then (a review).
    @Test("a push again doubles the wait of the runs it pushed only; a later run keeps its own time")
    func laterRunsKeepTheirTime() {
        var (pushes, start) = Self.sent((3, .zero), (5, .seconds(8)))
        #expect(pushes.due(at: start + .seconds(10)) == 3)
        pushes.pushedAgain(through: 3, at: start + .seconds(10))
        // 5 is due 10 s after it went out; 3, pushed again, 20 s after that.
        #expect(pushes.due(at: start + .seconds(17)) == nil)
        #expect(pushes.due(at: start + .seconds(18)) == 5)
        pushes.pushedAgain(through: 5, at: start + .seconds(18))
        #expect(pushes.rounds == 2)
        // New sends after a push again start a run of their own.
        pushes.sent(through: 6, at: start + .seconds(18.5))
        #expect(pushes.due(at: start + .seconds(28.5)) == 6)
    }

    @Test("an acknowledgement forgets what it covers; with nothing left, the waits start over")
    func acknowledgementForgets() {
        var (pushes, start) = Self.sent((3, .zero), (6, .seconds(2)))
        pushes.pushedAgain(through: 6, at: start + .seconds(10))
        pushes.acknowledge(through: 4)
        #expect(pushes.acknowledged == 4 && !pushes.isEmpty && pushes.rounds == 1)
        pushes.acknowledge(through: 2)  // lower: changes nothing
        #expect(pushes.acknowledged == 4)
        pushes.acknowledge(through: 6)
        #expect(pushes.isEmpty && pushes.rounds == 0)
        #expect(pushes.due(at: start + .seconds(1000), after: .seconds(1), atMost: .seconds(60)) == nil)
        // What was acknowledged is not sent again as unacknowledged.
        pushes.sent(through: 5, at: start + .seconds(20))
        #expect(pushes.isEmpty)
    }

    @Test("sends within a second make one run, dated by its first; the runs are bounded")
    func runsAreCoarseAndBounded() {
        var (pushes, start) = Self.sent((1, .zero), (2, .milliseconds(900)))
        // Both are due 10 s after the first went out.
        #expect(pushes.due(at: start + .seconds(10)) == 2)
        for second in 2...(UnacknowledgedPushes.maximumRuns + 10) {
            pushes.sent(through: Int64(second + 1), at: start + .seconds(second))
        }
        // Past the bound the newest sends join the last run: due from its time.
        let last = start + .seconds(UnacknowledgedPushes.maximumRuns)
        #expect(
            pushes.due(at: last + .seconds(10))
                == Int64(UnacknowledgedPushes.maximumRuns + 11))
    }

    @Test("a resume point past the user's latest seq comes down to it")
    func resumeComesDown() {
        var pushes = UnacknowledgedPushes(after: 500)
        pushes.resume(atMost: 20)
        pushes.sent(through: 21, at: .now)
        #expect(pushes.acknowledged == 20 && !pushes.isEmpty)
    }
}

extension UnacknowledgedPushes {
    /// ``due(at:after:atMost:)`` with the tests' base wait, 10 s, and cap, a minute.
    fileprivate func due(at now: ContinuousClock.Instant) -> Int64? {
        self.due(at: now, after: .seconds(10), atMost: .seconds(60))
    }
}
