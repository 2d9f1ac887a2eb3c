import BenchSupport
import Foundation
import Histogram
import Synchronization

/// Latencies and counts of the current rate step, shared by every client. A delivery is one
/// message reaching one recipient's socket, counted once (a redelivered push is not counted
/// again).
///
/// A step's errors are its `create_message` calls answered with an error or not answered by
/// the end of the drain, and deliveries to a socket that is not among the message's
/// recipients: such a delivery is not counted, so a message sent to the wrong user is both an
/// error and lost to its recipient (until the fifty-ninth session it counted as delivered, and
/// made up for one that never came; a review). Ack latency, like the end-to-end one, counts
/// from the intended send time.
final class Recorder: Sendable {
    private struct State {
        var step = -1
        /// For each conversation of the step (a message's index modulo their count), the slots
        /// of its recipients; empty: not checked.
        var recipients: [Set<Int>] = []
        var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var ack = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var delivered = Set<Int64>()
        var errors = 0
        /// Answers to the step's `create_message` calls, errors included.
        var answered = 0
        /// Per second since the origin (by intended send time): deliveries, the slowest, and
        /// those over 25 ms, to tell where a step's tail comes from.
        var seconds: [Int64: RateStep.Second] = [:]
    }

    private let state = Mutex(State())
    /// The origin of the intended send times written into message bodies.
    let origin = ContinuousClock.now
    /// The origin on the wall clock, to line seconds up with the servers' logs.
    private let originDate = Date()

    /// Starts counting for `step`, whose message `index` goes to the slots
    /// `recipients[index % recipients.count]`; deliveries and answers of other steps are ignored
    /// from now on.
    func start(step: Int, recipients: [Set<Int>] = []) {
        self.state.withLock { $0 = State(step: step, recipients: recipients) }
    }

    var deliveredCount: Int { self.state.withLock { $0.delivered.count } }

    /// Answers to the current step's `create_message` calls so far.
    var answeredCount: Int { self.state.withLock { $0.answered } }

    /// Nanoseconds from the origin to `instant`.
    func offset(of instant: ContinuousClock.Instant) -> Int64 {
        let offset = instant - self.origin
        return offset.components.seconds * 1_000_000_000 + offset.components.attoseconds / 1_000_000_000
    }

    /// Message `index` of `step`, intended to be sent `intendedNanoseconds` after the origin,
    /// reached the client in `slot`.
    func received(step: Int, index: Int, slot: Int, intendedNanoseconds: Int64) {
        let elapsed = self.offset(of: .now) - intendedNanoseconds
        self.state.withLock { state in
            guard state.step == step else { return }
            if !state.recipients.isEmpty, !state.recipients[index % state.recipients.count].contains(slot) {
                state.errors += 1
                return
            }
            guard state.delivered.insert(Int64(index) << 20 | Int64(slot)).inserted else { return }
            let microseconds = UInt64(max(elapsed, 0) / 1000)
            state.latency.record(microseconds)
            let second = intendedNanoseconds / 1_000_000_000
            let milliseconds = Double(microseconds) / 1000
            state.seconds[second, default: RateStep.Second(at: "", deliveries: 0, maxMs: 0, over25Ms: 0, slowestFlushMs: nil)]
                .add(milliseconds)
        }
    }

    /// A `create_message` call of `step` was answered, `duration` after its intended send time.
    func acked(step: Int, after duration: Duration, ok: Bool) {
        self.state.withLock { state in
            guard state.step == step else { return }
            state.answered += 1
            if ok { state.ack.record(UInt64(max(duration.microseconds, 0))) } else { state.errors += 1 }
        }
    }

    /// The step's figures so far.
    func step(
        rate: Int, seconds: Int, elapsed: Duration, sent: Int, deliveries: Int, cpu: [String: Double],
        scheduler: [String: SchedulerTimes]
    ) -> RateStep {
        self.state.withLock { state in
            func ms(_ histogram: Histogram<UInt64>, _ percentile: Double) -> Double {
                Double(histogram.valueAtPercentile(percentile)) / 1000
            }
            let latency = RateStep.Percentiles(
                p50: ms(state.latency, 50), p90: ms(state.latency, 90), p99: ms(state.latency, 99),
                p999: ms(state.latency, 99.9), max: Double(state.latency.max) / 1000)
            let lost = deliveries - state.delivered.count
            let errors = state.errors + max(sent - state.answered, 0)
            let formatter = ISO8601DateFormatter()
            let slowest = state.seconds.sorted { $0.value.maxMs > $1.value.maxMs }.prefix(5).map { second, figures in
                var figures = figures
                figures.at = formatter.string(from: self.originDate.addingTimeInterval(Double(second)))
                return figures
            }
            return RateStep(
                rate: rate, durationSeconds: seconds, achievedRate: Double(sent) / elapsed.seconds, sent: sent,
                deliveries: deliveries, delivered: state.delivered.count, lost: lost, errors: errors, latencyMs: latency,
                ackMs: .init(p50: ms(state.ack, 50), p99: ms(state.ack, 99)),
                withinTarget: lost == 0 && errors == 0 && latency.p99 <= Targets.stepP99Ms,
                cpuSecondsPer1000: cpu.mapValues { sent > 0 ? $0 / Double(sent) * 1000 : 0 },
                waitingForCoreMsPerMessage: scheduler.mapValues {
                    sent > 0 ? Double($0.waitNanoseconds) / 1e6 / Double(sent) : 0
                },
                timeslicesPerMessage: scheduler.mapValues { sent > 0 ? Double($0.timeslices) / Double(sent) : 0 },
                slowestSeconds: slowest)
        }
    }
}
