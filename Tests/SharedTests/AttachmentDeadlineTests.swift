import NIOCore
import Testing

@testable import SocketIOServer

/// ``AttachmentDeadline``: a minute and the largest attachment's time from a binary packet's
/// header, more for each KiB that came.
@Suite("Binary attachments' deadline")
struct AttachmentDeadlineTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("a minute and one attachment's time from the header; 32 KiB earn a second; ten minutes at most")
    func arithmetic() {
        var deadline = AttachmentDeadline(started: self.start, maxPayload: 1 << 20)
        #expect(deadline.deadline == self.start + .seconds(92))
        deadline.received(1 << 20)
        #expect(deadline.deadline == self.start + .seconds(124))
        deadline.received(1023)  // not a whole KiB more
        #expect(deadline.deadline == self.start + .seconds(124))
        deadline.received(20_000_000)
        #expect(deadline.deadline == self.start + .minutes(10))
    }

    @Test("one attachment as large as a message may be, at 32 KiB/s, comes before the deadline")
    func largestAttachment() {
        let maxPayload = 4 << 20
        let deadline = AttachmentDeadline(started: self.start, maxPayload: maxPayload)
        #expect(self.start + .seconds(Int64(maxPayload / (32 << 10))) < deadline.deadline)
    }

    /// Until the fifty-fifth session one deadline of 60 s closed it at the eighth file, and
    /// again on every retry (a review).
    @Test("twenty files of 1 MB on a 1 Mbit/s uplink each come before the deadline")
    func slowUplink() {
        var deadline = AttachmentDeadline(started: self.start, maxPayload: 1_000_000)
        let secondsPerFile: Int64 = 8  // 1,000,000 bytes at 125,000 bytes a second
        for file in 1...20 {
            let arrives = self.start + .seconds(secondsPerFile * Int64(file))
            #expect(arrives < deadline.deadline, "file \(file)")
            deadline.received(1_000_000)
        }
    }

    @Test("a client that trickles bytes earns only what they are worth")
    func trickle() {
        var deadline = AttachmentDeadline(started: self.start, maxPayload: 1_000_000)
        for _ in 0..<600 { deadline.received(10) }  // a small attachment every 100 ms for a minute
        let oneMessage = TimeAmount.microseconds(31_250 * (1_000_000 / 1024))
        #expect(deadline.deadline == self.start + .seconds(60) + oneMessage + .microseconds(31_250 * 5))
    }
}
