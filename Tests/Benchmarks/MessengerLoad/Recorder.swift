import BenchSupport
import Foundation
import Histogram
import Synchronization

/// Latencies and counts of the current rate step, shared by every client. A delivery is one
/// message reaching one recipient's socket, counted once (a redelivered push is not counted
/// again).
final class Recorder: Sendable {
    private struct State {
        var step = -1
        var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var ack = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var delivered = Set<Int64>()
        var errors = 0
        /// Per second since the origin (by intended send time): deliveries, the slowest, and
        /// those over 25 ms, to tell where a step's tail comes from.
        var seconds: [Int64: RateStep.Second] = [:]
    }

    private let state = Mutex(State())
    /// The origin of the intended send times written into message bodies.
    let origin = ContinuousClock.now
    /// The origin on the wall clock, to line seconds up with the servers' logs.
    private let originDate = Date()

    /// Starts counting for `step`; deliveries of other steps are ignored from now on.
    func start(step: Int) { self.state.withLock { $0 = State(step: step) } }

    var deliveredCount: Int { self.state.withLock { $0.delivered.count } }

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
            guard state.step == step, state.delivered.insert(Int64(index) << 20 | Int64(slot)).inserted else { return }
            let microseconds = UInt64(max(elapsed, 0) / 1000)
            state.latency.record(microseconds)
            let second = intendedNanoseconds / 1_000_000_000
            let milliseconds = Double(microseconds) / 1000
            state.seconds[second, default: RateStep.Second(at: "", deliveries: 0, maxMs: 0, over25Ms: 0, slowestFlushMs: nil)]
                .add(milliseconds)
        }
    }

    func acked(after duration: Duration, ok: Bool) {
        self.state.withLock { state in
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
            let formatter = ISO8601DateFormatter()
            let slowest = state.seconds.sorted { $0.value.maxMs > $1.value.maxMs }.prefix(5).map { second, figures in
                var figures = figures
                figures.at = formatter.string(from: self.originDate.addingTimeInterval(Double(second)))
                return figures
            }
            return RateStep(
                rate: rate, durationSeconds: seconds, achievedRate: Double(sent) / elapsed.seconds, sent: sent,
                deliveries: deliveries, delivered: state.delivered.count, lost: lost, errors: state.errors, latencyMs: latency,
                ackMs: .init(p50: ms(state.ack, 50), p99: ms(state.ack, 99)),
                withinTarget: lost == 0 && state.errors == 0 && latency.p99 <= Targets.stepP99Ms,
                cpuSecondsPer1000: cpu.mapValues { sent > 0 ? $0 / Double(sent) * 1000 : 0 },
                waitingForCoreMsPerMessage: scheduler.mapValues {
                    sent > 0 ? Double($0.waitNanoseconds) / 1e6 / Double(sent) : 0
                },
                timeslicesPerMessage: scheduler.mapValues { sent > 0 ? Double($0.timeslices) / Double(sent) : 0 },
                slowestSeconds: slowest)
        }
    }
}
