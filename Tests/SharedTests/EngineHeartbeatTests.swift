import NIOCore
import Testing

@testable import SocketIOServer

@Suite("Engine.IO heartbeat")
struct EngineHeartbeatTests {
    let opened = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func heartbeat() -> EngineHeartbeat {
        EngineHeartbeat(interval: .milliseconds(300), timeout: .milliseconds(200), openedAt: self.opened)
    }

    @Test("the first ping goes out one interval after the session opened")
    func firstPing() {
        var heartbeat = self.heartbeat()
        #expect(heartbeat.nextDeadline == self.opened + .milliseconds(300))
        let early = heartbeat.due(at: self.opened + .milliseconds(299))
        let onTime = heartbeat.due(at: self.opened + .milliseconds(300))
        #expect(early == .wait)
        #expect(onTime == .sendPing)
        #expect(heartbeat.nextDeadline == self.opened + .milliseconds(500))
    }

    @Test("a pong re-arms the next ping one interval after it arrived")
    func pongRearms() {
        var heartbeat = self.heartbeat()
        _ = heartbeat.due(at: self.opened + .milliseconds(300))
        let answered = heartbeat.pong(at: self.opened + .milliseconds(350))
        #expect(answered)
        #expect(heartbeat.nextDeadline == self.opened + .milliseconds(650))
        let beforeNextPing = heartbeat.due(at: self.opened + .milliseconds(500))
        #expect(beforeNextPing == .wait)
        #expect(!heartbeat.isOverdue(at: self.opened + .seconds(10)))
    }

    @Test("an unanswered ping times out exactly at its deadline")
    func timeout() {
        var heartbeat = self.heartbeat()
        let sent = self.opened + .milliseconds(300)
        let ping = heartbeat.due(at: sent)
        let justBefore = heartbeat.due(at: sent + .milliseconds(199))
        #expect(ping == .sendPing)
        #expect(justBefore == .wait)
        #expect(!heartbeat.isOverdue(at: sent + .milliseconds(199)))
        #expect(heartbeat.isOverdue(at: sent + .milliseconds(200)))
        let atDeadline = heartbeat.due(at: sent + .milliseconds(200))
        #expect(atDeadline == .timedOut)
    }

    @Test("a pong nobody asked for changes nothing")
    func unsolicitedPong() {
        var heartbeat = self.heartbeat()
        let answered = heartbeat.pong(at: self.opened + .milliseconds(100))
        #expect(!answered)
        #expect(heartbeat.nextDeadline == self.opened + .milliseconds(300))
    }

    @Test("while the server does not read the connection, an unanswered ping does not time out, and pings go on")
    func pausedReading() {
        var heartbeat = self.heartbeat()
        let sent = self.opened + .milliseconds(300)
        _ = heartbeat.due(at: sent)
        heartbeat.pauseReading()
        #expect(!heartbeat.isOverdue(at: sent + .seconds(10)))
        let beforeDeadline = heartbeat.due(at: sent + .milliseconds(199))
        #expect(beforeDeadline == .wait)
        let atDeadline = heartbeat.due(at: sent + .milliseconds(200))
        #expect(atDeadline == .sendPing)
        #expect(heartbeat.nextDeadline == sent + .milliseconds(400))
        let muchLater = heartbeat.due(at: sent + .seconds(10))
        #expect(muchLater == .sendPing)
        #expect(heartbeat.nextDeadline == sent + .seconds(10) + .milliseconds(200))
    }

    @Test("once reading resumes, the outstanding ping gets its whole timeout from then")
    func resumedReading() {
        var heartbeat = self.heartbeat()
        let sent = self.opened + .milliseconds(300)
        _ = heartbeat.due(at: sent)
        heartbeat.pauseReading()
        let resumedAt = sent + .seconds(5)
        let moved = heartbeat.resumeReading(at: resumedAt)
        #expect(moved)
        #expect(heartbeat.nextDeadline == resumedAt + .milliseconds(200))
        #expect(!heartbeat.isOverdue(at: resumedAt + .milliseconds(199)))
        let justBefore = heartbeat.due(at: resumedAt + .milliseconds(199))
        let atDeadline = heartbeat.due(at: resumedAt + .milliseconds(200))
        #expect(justBefore == .wait)
        #expect(atDeadline == .timedOut)
    }

    @Test("resuming what was not paused, or with no ping out, moves no deadline")
    func resumeWithoutPause() {
        var heartbeat = self.heartbeat()
        let sent = self.opened + .milliseconds(300)
        let notPaused = heartbeat.resumeReading(at: self.opened + .milliseconds(100))
        #expect(!notPaused)
        _ = heartbeat.due(at: sent)
        let stillNotPaused = heartbeat.resumeReading(at: sent + .milliseconds(100))
        #expect(!stillNotPaused)
        #expect(heartbeat.nextDeadline == sent + .milliseconds(200))
        _ = heartbeat.pong(at: sent + .milliseconds(50))
        heartbeat.pauseReading()
        let noPingOut = heartbeat.resumeReading(at: sent + .milliseconds(60))
        #expect(!noPingOut)
        #expect(heartbeat.nextDeadline == sent + .milliseconds(350))
    }
}
