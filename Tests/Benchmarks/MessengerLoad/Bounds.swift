import BenchSupport
import Foundation

/// What bounds a missed target, said from the run's own measurements: how busy the machine's
/// cores were (each process's CPU per message), what the path costs when nothing waits for a
/// core, and the disk's flush latency beside the step.
enum Bounds {
    /// A busier machine than this is taken as bounded by its cores.
    static let fullShare = 0.85

    /// The latency floor's bound: the path without contention, the cores, the disk, the wake-ups.
    static func floor(step: RateStep, unloaded: RateStep?, cores: Int, wakeUpP50Us: Double?) -> String {
        let use = CPUUse(cpuSecondsPer1000: step.cpuSecondsPer1000, rate: step.achievedRate, cores: cores)
        var parts: [String] = []
        if let unloaded {
            parts.append(
                String(
                    format:
                        "the path: at %d msg/s, nothing waiting for a core, p50 %.1f ms and p99 %.1f ms (three messages through RabbitMQ, two commits and a Redis hop, each a thread wake-up)",
                    unloaded.rate, unloaded.latencyMs.p50, unloaded.latencyMs.p99))
        }
        parts.append(
            String(
                format: "the cores: at %d msg/s the processes took %@, %.1f ms of CPU per message (%@)",
                step.rate, use.busyText as NSString, use.perMessageMs, use.largestText() as NSString)
                + (Self.contention(step, use: use).map { ", and " + $0 } ?? ""))
        if let disk = Self.disk(step) { parts.append(disk) }
        if let wakeUpP50Us {
            parts.append(String(format: "a thread wake-up round trip took %.0f µs (p50) on this machine", wakeUpP50Us))
        }
        return parts.joined(separator: "; ")
    }

    /// The throughput's bound, at the first step past the best one (or the last step tried).
    static func throughput(steps: [RateStep], best: Int?, target: Int, cores: Int) -> String? {
        guard let limit = steps.first(where: { !$0.withinTarget && $0.rate > (best ?? 0) }) ?? steps.last else { return nil }
        let use = CPUUse(cpuSecondsPer1000: limit.cpuSecondsPer1000, rate: limit.achievedRate, cores: cores)
        var parts: [String] = []
        if limit.withinTarget {
            parts.append("the rates tried end at \(limit.rate) msg/s")
        } else {
            var missed = [String(format: "p99 %.1f ms", limit.latencyMs.p99)]
            if limit.lost > 0 { missed.append("\(limit.lost) lost") }
            if limit.errors > 0 { missed.append("\(limit.errors) errors") }
            parts.append("at \(limit.rate) msg/s: \(missed.joined(separator: ", "))")
        }
        let budget = use.budgetMs(atRate: Double(target))
        let cost = String(
            format:
                "%.2f ms of CPU per message (%@), at which the %d cores carry at most %.0f msg/s; %@ msg/s leaves %.2f ms per message, %.1fx less",
            use.perMessageMs, use.largestText() as NSString, cores, use.rateAtFullMachine,
            Self.grouped(target) as NSString, budget, use.perMessageMs / max(budget, 0.001))
        let contention = Self.contention(limit, use: use).map { "; " + $0 } ?? ""
        if use.busyShare >= Self.fullShare {
            parts.append("CPU: the processes took \(use.busyText), \(cost)\(contention)")
        } else {
            parts.append("not the cores alone: the processes took \(use.busyText); \(cost)\(contention)")
        }
        if let disk = Self.disk(limit) { parts.append(disk) }
        return parts.joined(separator: "; ")
    }

    /// How long the processes' threads waited for a free core, against the CPU they used, and
    /// how often they were put on one; nil for a result without those figures.
    private static func contention(_ step: RateStep, use: CPUUse) -> String? {
        guard let waiting = step.waitingForCoreMsPerMessage, let slices = step.timeslicesPerMessage,
            !waiting.isEmpty
        else { return nil }
        let waited = waiting.values.reduce(0, +)
        return String(
            format:
                "their threads waited %.1f ms per message for a free core (%.1fx the CPU they used) and were put on a core %.0f times per message",
            waited, waited / max(use.perMessageMs, 0.001), slices.values.reduce(0, +))
    }

    /// `3000` as "3,000".
    static func grouped(_ value: Int) -> String {
        value < 1000 ? String(value) : Self.grouped(value / 1000) + String(format: ",%03d", value % 1000)
    }

    /// The disk's flush latency beside a step, when the probe ran.
    private static func disk(_ step: RateStep) -> String? {
        guard let disk = step.diskSyncMs, disk.samples > 0 else { return nil }
        return String(
            format: "the disk's flush (every commit waits for one) p99.9 %.1f ms, max %.1f ms, %d over %.0f ms",
            disk.p999, disk.max, disk.stalls.count, DiskSyncProbe.stallThresholdMs)
    }
}
