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
                        "the path: at %d msg/s, the cores mostly idle, p50 %.1f ms and p99 %.1f ms (three messages through RabbitMQ and three commits: messaging's write, the outbox relay's statement, which deletes the rows it published before, and delivery's record; each a thread wake-up or more)",
                    unloaded.rate, unloaded.latencyMs.p50, unloaded.latencyMs.p99))
        }
        parts.append(
            String(
                format: "the cores: at %d msg/s the processes took %@, %.1f ms of CPU per message (%@)",
                step.rate, use.busyText as NSString, use.perMessageMs, use.largestText() as NSString)
                + (Self.contention(step, use: use, unloaded: unloaded).map { "; " + $0 } ?? ""))
        if let disk = Self.disk(step) { parts.append(disk) }
        if let wakeUpP50Us {
            parts.append(String(format: "a thread wake-up round trip took %.0f µs (p50) on this machine", wakeUpP50Us))
        }
        return parts.joined(separator: "; ")
    }

    /// The throughput's bound, at the first step past the best one (or the last step tried).
    /// With `sumOfParts` below `target`, it first says so: the servers' own work for a message of
    /// the scenario, at the rates each reached alone in this run, does not fit `target` a second.
    static func throughput(steps: [RateStep], best: Int?, target: Int, cores: Int, sumOfParts: Double?) -> String? {
        guard let limit = steps.first(where: { !$0.withinTarget && $0.rate > (best ?? 0) }) ?? steps.last else { return nil }
        let use = CPUUse(cpuSecondsPer1000: limit.cpuSecondsPer1000, rate: limit.achievedRate, cores: cores)
        var parts: [String] = []
        if let sumOfParts, sumOfParts > 0, sumOfParts < Double(target) {
            parts.append(
                String(
                    format:
                        "%@ msg/s is %.1fx this run's sum-of-parts ceiling (%@ msg/s: a message's commits, confirmed publishes and Redis PUBLISHes at the rates each server reached alone, with nothing else running)",
                    Self.grouped(target) as NSString, Double(target) / sumOfParts,
                    Self.grouped(Int(sumOfParts.rounded())) as NSString))
        }
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

    /// How often the processes' threads were put on a core, and how long they waited each time
    /// between being ready to run and running (the run-queue wait: a busy core, or an idle
    /// one waking up, which in a virtual machine takes tens of µs); with `unloaded`, that
    /// wait at the unloaded rate too. Nil for a result without those figures.
    private static func contention(_ step: RateStep, use: CPUUse, unloaded: RateStep? = nil) -> String? {
        guard let (slices, waited) = Self.scheduling(step) else { return nil }
        var text = String(
            format:
                "their threads were put on a core %.0f times per message and waited %.0f µs on average each time before running (%.1f ms per message, %.1fx the CPU they used",
            slices, waited / max(slices, 1) * 1000, waited, waited / max(use.perMessageMs, 0.001))
        if let unloaded, let (quietSlices, quietWaited) = Self.scheduling(unloaded), quietSlices > 0 {
            text += String(format: "; %.0f µs at %d msg/s", quietWaited / quietSlices * 1000, unloaded.rate)
        }
        return text + ")"
    }

    /// Times on a core and milliseconds waited for one, per message, all processes together.
    private static func scheduling(_ step: RateStep) -> (slices: Double, waitedMs: Double)? {
        guard let waiting = step.waitingForCoreMsPerMessage, let slices = step.timeslicesPerMessage, !waiting.isEmpty
        else { return nil }
        return (slices.values.reduce(0, +), waiting.values.reduce(0, +))
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
