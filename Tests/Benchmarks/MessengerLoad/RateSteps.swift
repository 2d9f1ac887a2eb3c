import BenchSupport
import Foundation
import MessengerServiceKit
import Synchronization

/// A conversation the load is sent to: who sends, in which thread, to which clients (their
/// slots).
struct LoadConversation: Sendable {
    var sender: LoadClient
    var thread: String
    var recipients: Set<Int>
}

/// Runs rate steps: each step sends at a fixed arrival rate for a while (open loop: every
/// message is stamped with its intended send time, so a slow system cannot slow the load down),
/// round-robin over the conversations, then waits up to `drain` for what is still on its way,
/// and reports percentiles, loss and each process's CPU per 1,000 messages.
final class RateSteps: Sendable {
    let recorder: Recorder
    let processes: RunProcesses
    let drain: Duration
    /// Measures the disk's flush latency during each step, when there is a place to write to.
    let diskProbe: DiskSyncProbe?
    private let steps = Mutex(0)

    init(recorder: Recorder, processes: RunProcesses, diskProbe: DiskSyncProbe?, drain: Duration = .seconds(10)) {
        self.recorder = recorder
        self.processes = processes
        self.diskProbe = diskProbe
        self.drain = drain
    }

    func run(_ conversations: [LoadConversation], rate: Int, seconds: Int, label: String) async throws -> RateStep {
        let step = self.steps.withLock { step in
            step += 1
            return step
        }
        self.recorder.start(step: step, recipients: conversations.map(\.recipients))
        self.diskProbe?.start()
        let cpuBefore = self.processes.cpuSnapshot()
        let schedulerBefore = self.processes.schedulerSnapshot()
        let total = rate * seconds
        var deliveries = 0
        let started = ContinuousClock.now
        var nextProgress = started + .seconds(5)
        for index in 0..<total {
            let intended = started + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate))
            try await LoopTimer.sleep(until: intended)
            let conversation = conversations[index % conversations.count]
            conversation.sender.send(thread: conversation.thread, step: step, index: index, intended: intended)
            deliveries += conversation.recipients.count
            if ContinuousClock.now >= nextProgress {
                nextProgress = nextProgress + .seconds(5)
                say(
                    "    \(label) \(rate) msg/s: \(index + 1)/\(total) sent, \(self.recorder.deliveredCount)/\(deliveries) delivered"
                )
            }
        }
        let sending = ContinuousClock.now - started
        let deadline = ContinuousClock.now + self.drain
        while self.recorder.deliveredCount < deliveries || self.recorder.answeredCount < total, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let cpu = RunProcesses.difference(cpuBefore, self.processes.cpuSnapshot())
        let scheduler = RunProcesses.difference(schedulerBefore, self.processes.schedulerSnapshot())
        var result = self.recorder.step(
            rate: rate, seconds: seconds, elapsed: sending, sent: total, deliveries: deliveries, cpu: cpu,
            scheduler: scheduler)
        if let disk = await self.diskProbe?.stop() {
            result.diskSyncMs = disk
            result.slowestSeconds = result.slowestSeconds?.map { second in
                var second = second
                second.slowestFlushMs = Self.slowestFlush(near: second.at, in: disk.stalls)
                return second
            }
        }
        return result
    }

    /// One line of the step table.
    static func line(_ step: RateStep) -> String {
        String(
            format: "  %6d %8.0f %7d %9d %6d %6d   %7.1f %6.1f %6.1f %6.1f %7.1f   %6.1f %6.1f   %@", step.rate,
            step.achievedRate, step.sent, step.deliveries, step.lost, step.errors, step.latencyMs.p50, step.latencyMs.p90,
            step.latencyMs.p99, step.latencyMs.p999, step.latencyMs.max, step.ackMs.p50, step.ackMs.p99,
            (step.withinTarget ? "yes" : "no") as NSString)
    }

    /// The disk's flush latency during a step, and the step's slowest seconds with the slowest
    /// flush of the same or the previous second (a stall delays what is sent after it began).
    static func tailLines(_ step: RateStep) -> [String] {
        guard let disk = step.diskSyncMs else { return [] }
        if let failure = disk.failure, disk.samples == 0 { return ["      disk flush not measured: \(failure)"] }
        var lines = [
            String(
                format:
                    "      disk flush (4 KiB fdatasync every 20 ms): p50 %.2f, p99 %.1f, p99.9 %.1f, max %.1f ms; %d over %.0f ms",
                disk.p50, disk.p99, disk.p999, disk.max, disk.stalls.count, DiskSyncProbe.stallThresholdMs)
        ]
        if let failure = disk.failure { lines.append("      disk probe stopped early: \(failure)") }
        for second in step.slowestSeconds ?? [] {
            let stall = second.slowestFlushMs
            lines.append(
                String(
                    format: "      slowest second %@: max %.1f ms, %d of %d deliveries over 25 ms; slowest flush then %@",
                    second.at, second.maxMs, second.over25Ms, second.deliveries,
                    stall.map { String(format: "%.1f ms", $0) } ?? "under 10 ms"))
        }
        return lines
    }

    /// The slowest of `stalls` that began in the second starting at `at` or in the one before.
    static func slowestFlush(near at: String, in stalls: [DiskSyncProbe.Stall]) -> Double? {
        guard let start = ISO8601DateFormatter().date(from: at) else { return nil }
        let precise = ISO8601DateFormatter()
        precise.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return
            stalls.filter { stall in
                guard let began = precise.date(from: stall.at) else { return false }
                return began >= start.addingTimeInterval(-1) && began < start.addingTimeInterval(1)
            }
            .map(\.ms).max()
    }

    static let header =
        "  rate/s achieved    sent  delivers   lost errors   e2e p50    p90    p99  p99.9     max   ack p50    p99   p99<=100 & none lost"
}
