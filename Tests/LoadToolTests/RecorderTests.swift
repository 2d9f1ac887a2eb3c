import Foundation
import Testing

@testable import MessengerLoad

@Suite("The load tool's recorder")
struct RecorderTests {
    @Test("a delivery counts once, only in its own step, and what never came is lost")
    func counting() {
        let recorder = Recorder()
        recorder.start(step: 1)
        let sent = recorder.offset(of: .now)
        recorder.received(step: 1, index: 0, slot: 3, intendedNanoseconds: sent)
        recorder.received(step: 1, index: 0, slot: 3, intendedNanoseconds: sent)  // a redelivery
        recorder.received(step: 1, index: 0, slot: 4, intendedNanoseconds: sent)  // another recipient
        recorder.received(step: 0, index: 1, slot: 3, intendedNanoseconds: sent)  // an earlier step's, late
        recorder.acked(after: .milliseconds(2), ok: true)
        #expect(recorder.deliveredCount == 2)

        let partial = recorder.step(
            rate: 10, seconds: 1, elapsed: .seconds(1), sent: 2, deliveries: 3, cpu: ["postgres": 0.002], scheduler: [:])
        #expect(partial.delivered == 2 && partial.lost == 1 && partial.errors == 0)
        #expect(!partial.withinTarget, "a step that lost a delivery is not within target")
        #expect(partial.cpuSecondsPer1000["postgres"] == 1.0)

        recorder.received(step: 1, index: 1, slot: 3, intendedNanoseconds: sent)
        recorder.acked(after: .milliseconds(1), ok: false)
        let complete = recorder.step(
            rate: 10, seconds: 1, elapsed: .seconds(1), sent: 2, deliveries: 3, cpu: [:], scheduler: [:])
        #expect(complete.lost == 0 && complete.errors == 1)
        #expect(!complete.withinTarget, "a step with an error is not within target")

        recorder.start(step: 2)
        #expect(recorder.deliveredCount == 0)
    }
}
