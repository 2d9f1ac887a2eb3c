import BenchSupport
import Foundation
import Synchronization

/// A conversation the load is sent to: who sends, in which thread, to how many recipients.
struct LoadConversation: Sendable {
    var sender: LoadClient
    var thread: String
    var recipients: Int
}

/// Runs rate steps: each step sends at a fixed arrival rate for a while (open loop: every
/// message is stamped with its intended send time, so a slow system cannot slow the load down),
/// round-robin over the conversations, then waits up to `drain` for what is still on its way,
/// and reports percentiles, loss and each process's CPU per 1,000 messages.
final class RateSteps: Sendable {
    let recorder: Recorder
    let processes: RunProcesses
    let drain: Duration
    private let steps = Mutex(0)

    init(recorder: Recorder, processes: RunProcesses, drain: Duration = .seconds(10)) {
        self.recorder = recorder
        self.processes = processes
        self.drain = drain
    }

    func run(_ conversations: [LoadConversation], rate: Int, seconds: Int, label: String) async throws -> RateStep {
        let step = self.steps.withLock { step in
            step += 1
            return step
        }
        self.recorder.start(step: step)
        let cpuBefore = self.processes.cpuSnapshot()
        let total = rate * seconds
        var deliveries = 0
        let started = ContinuousClock.now
        var nextProgress = started + .seconds(5)
        for index in 0..<total {
            let intended = started + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate))
            try await Task.sleep(until: intended, clock: .continuous)
            let conversation = conversations[index % conversations.count]
            conversation.sender.send(thread: conversation.thread, step: step, index: index, intended: intended)
            deliveries += conversation.recipients
            if ContinuousClock.now >= nextProgress {
                nextProgress = nextProgress + .seconds(5)
                say(
                    "    \(label) \(rate) msg/s: \(index + 1)/\(total) sent, \(self.recorder.deliveredCount)/\(deliveries) delivered"
                )
            }
        }
        let sending = ContinuousClock.now - started
        let deadline = ContinuousClock.now + self.drain
        while self.recorder.deliveredCount < deliveries, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let cpu = RunProcesses.difference(cpuBefore, self.processes.cpuSnapshot())
        return self.recorder.step(rate: rate, seconds: seconds, elapsed: sending, sent: total, deliveries: deliveries, cpu: cpu)
    }

    /// One line of the step table.
    static func line(_ step: RateStep) -> String {
        String(
            format: "  %6d %8.0f %7d %9d %6d %6d   %7.1f %6.1f %6.1f %6.1f %7.1f   %6.1f %6.1f   %@", step.rate,
            step.achievedRate, step.sent, step.deliveries, step.lost, step.errors, step.latencyMs.p50, step.latencyMs.p90,
            step.latencyMs.p99, step.latencyMs.p999, step.latencyMs.max, step.ackMs.p50, step.ackMs.p99,
            (step.withinTarget ? "yes" : "no") as NSString)
    }

    static let header =
        "  rate/s achieved    sent  delivers   lost errors   e2e p50    p90    p99  p99.9     max   ack p50    p99   p99<=100 & none lost"
}
