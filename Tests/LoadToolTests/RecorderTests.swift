import Foundation
import Testing

@testable import MessengerLoad

@Suite("The load tool's recorder")
struct RecorderTests {
    @Test("a delivery counts once, only in its own step, and what never came is lost")
    func counting() {
        let recorder = Recorder()
        // Message 0 goes to slots 3 and 4, message 1 to slot 3 (two conversations, in turn).
        recorder.start(step: 1, recipients: [[3, 4], [3]])
        let sent = recorder.offset(of: .now)
        recorder.received(step: 1, index: 0, slot: 3, intendedNanoseconds: sent)
        recorder.received(step: 1, index: 0, slot: 3, intendedNanoseconds: sent)  // a redelivery
        recorder.received(step: 1, index: 0, slot: 4, intendedNanoseconds: sent)  // another recipient
        recorder.received(step: 0, index: 1, slot: 3, intendedNanoseconds: sent)  // an earlier step's, late
        recorder.acked(step: 1, after: .milliseconds(2), ok: true)
        recorder.acked(step: 0, after: .milliseconds(2), ok: false)  // an earlier step's, late
        #expect(recorder.deliveredCount == 2)

        let partial = recorder.step(
            rate: 10, seconds: 1, elapsed: .seconds(1), sent: 2, deliveries: 3, cpu: ["postgres": 0.002], scheduler: [:])
        #expect(partial.delivered == 2 && partial.lost == 1)
        #expect(partial.errors == 1, "message 1's call is not answered yet")
        #expect(!partial.withinTarget, "a step that lost a delivery is not within target")
        #expect(partial.cpuSecondsPer1000["postgres"] == 1.0)

        recorder.received(step: 1, index: 1, slot: 3, intendedNanoseconds: sent)
        recorder.acked(step: 1, after: .milliseconds(1), ok: false)
        let complete = recorder.step(
            rate: 10, seconds: 1, elapsed: .seconds(1), sent: 2, deliveries: 3, cpu: [:], scheduler: [:])
        #expect(complete.lost == 0 && complete.errors == 1)
        #expect(!complete.withinTarget, "a step with an error is not within target")

        recorder.start(step: 2)
        #expect(recorder.deliveredCount == 0)
    }

    @Test("a delivery to a socket that is not among the message's recipients is an error, and makes up for no loss")
    func misrouted() {
        let recorder = Recorder()
        recorder.start(step: 1, recipients: [[3]])
        let sent = recorder.offset(of: .now)
        recorder.received(step: 1, index: 0, slot: 4, intendedNanoseconds: sent)  // for slot 3, not 4
        recorder.acked(step: 1, after: .milliseconds(1), ok: true)
        let step = recorder.step(
            rate: 1, seconds: 1, elapsed: .seconds(1), sent: 1, deliveries: 1, cpu: [:], scheduler: [:])
        #expect(step.delivered == 0 && step.lost == 1 && step.errors == 1)
        #expect(!step.withinTarget)
    }
}
