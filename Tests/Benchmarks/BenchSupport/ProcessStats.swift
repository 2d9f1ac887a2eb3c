import Foundation

/// CPU time and memory of the processes of a local run, read from /proc.
public enum ProcessStats {
    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// VmRSS of a process, in bytes (0 when it is gone).
    public static func residentBytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return (Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) * 1024
    }

    /// User + system CPU seconds of a process; with `children`, also of its live descendants
    /// and of the children it has reaped (PostgreSQL's backends, RabbitMQ's helpers).
    public static func cpuSeconds(_ pid: Int32, children: Bool = false) -> Double {
        guard let fields = self.statFields(pid) else { return 0 }
        var ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        if children {
            ticks += (Double(fields[13]) ?? 0) + (Double(fields[14]) ?? 0)
            for child in self.children(of: pid) { ticks += self.cpuSeconds(child, children: true) * self.ticksPerSecond }
        }
        return ticks / self.ticksPerSecond
    }

    /// What the scheduler did with each live thread of a process (and, with `children`, of its
    /// live descendants), by thread id, from /proc/<pid>/task/<tid>/schedstat.
    public static func schedulerTimes(_ pid: Int32, children: Bool = false) -> [Int32: SchedulerTimes] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        var times: [Int32: SchedulerTimes] = [:]
        for task in tasks {
            if let id = Int32(task),
                let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/schedstat", encoding: .utf8),
                let thread = SchedulerTimes(schedstat: text)
            {
                times[id] = thread
            }
        }
        if children {
            for child in self.children(of: pid) {
                times.merge(self.schedulerTimes(child, children: true)) { first, _ in first }
            }
        }
        return times
    }

    /// The fields of /proc/<pid>/stat after the command name (field 3 on).
    private static func statFields(_ pid: Int32) -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// The direct children of `pid`, from /proc/<pid>/task/*/children.
    private static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.flatMap { task -> [Int32] in
            let text = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
            return text.split(separator: " ").compactMap { Int32($0) }
        }
    }
}

/// Time a set of threads spent on a core and waiting for one, as the kernel's scheduler counts
/// it (/proc/<pid>/task/<tid>/schedstat): a thread that is ready to run (woken, or preempted)
/// waits on a run queue until its core is free, or, when that core was idle, until it has
/// woken up (tens of µs in a virtual machine).
public struct SchedulerTimes: Sendable, Equatable {
    /// Nanoseconds on a core.
    public var runNanoseconds: UInt64 = 0
    /// Nanoseconds ready to run, waiting on a run queue.
    public var waitNanoseconds: UInt64 = 0
    /// Times a thread was put on a core (each wake-up and each return after a preemption).
    public var timeslices: UInt64 = 0

    public init(runNanoseconds: UInt64 = 0, waitNanoseconds: UInt64 = 0, timeslices: UInt64 = 0) {
        self.runNanoseconds = runNanoseconds
        self.waitNanoseconds = waitNanoseconds
        self.timeslices = timeslices
    }

    /// Parses one schedstat line, "run wait timeslices"; nil when it is not one.
    public init?(schedstat: String) {
        let fields = schedstat.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard fields.count >= 3, let run = UInt64(fields[0]), let wait = UInt64(fields[1]),
            let slices = UInt64(fields[2])
        else { return nil }
        self.init(runNanoseconds: run, waitNanoseconds: wait, timeslices: slices)
    }

    public static func + (a: Self, b: Self) -> Self {
        Self(
            runNanoseconds: a.runNanoseconds + b.runNanoseconds, waitNanoseconds: a.waitNanoseconds + b.waitNanoseconds,
            timeslices: a.timeslices + b.timeslices)
    }

    /// What happened to a set of threads between two readings by thread id: threads that
    /// started since count whole, threads that ended are missing from both sums.
    public static func spent(from before: [Int32: Self], to after: [Int32: Self]) -> Self {
        after.reduce(into: Self()) { total, entry in
            let earlier = before[entry.key] ?? Self()
            func delta(_ now: UInt64, _ then: UInt64) -> UInt64 { now >= then ? now - then : now }
            total =
                total
                + Self(
                    runNanoseconds: delta(entry.value.runNanoseconds, earlier.runNanoseconds),
                    waitNanoseconds: delta(entry.value.waitNanoseconds, earlier.waitNanoseconds),
                    timeslices: delta(entry.value.timeslices, earlier.timeslices))
        }
    }
}

/// The processes of a local run (`make up`): the servers and the five services, found through
/// the pid files under `.run/pids`, plus this process; sampled together to give each one's CPU
/// seconds over a window.
public struct RunProcesses: Sendable {
    /// Name and pid, in report order.
    public let processes: [(name: String, pid: Int32)]

    /// Reads `<runDirectory>/pids`: `postgres`, `rabbitmq`, `redis` and `svc-<service>`.
    public init(runDirectory: String = ".run", selfName: String) {
        func pid(_ file: String) -> Int32? {
            (try? String(contentsOfFile: "\(runDirectory)/pids/\(file).pid", encoding: .utf8)).flatMap {
                Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
        var processes: [(String, Int32)] = []
        for (name, file) in [
            ("postgres", "postgres"), ("rabbitmq", "rabbitmq"), ("redis", "redis"), ("auth", "svc-auth"),
            ("messaging", "svc-messaging"), ("delivery", "svc-delivery"), ("socket-gateway", "svc-socket-gateway"),
            ("media", "svc-media"),
        ] {
            if let pid = pid(file) { processes.append((name, pid)) }
        }
        processes.append((selfName, getpid()))
        self.processes = processes
    }

    /// CPU seconds of every process (the servers with their children) at this moment.
    public func cpuSnapshot() -> [String: Double] {
        Dictionary(
            uniqueKeysWithValues: self.processes.map { process in
                (
                    process.name,
                    ProcessStats.cpuSeconds(process.pid, children: process.name == "postgres" || process.name == "rabbitmq")
                )
            })
    }

    /// The scheduler's times of every thread of every process (the servers with their
    /// children) at this moment.
    public func schedulerSnapshot() -> [String: [Int32: SchedulerTimes]] {
        Dictionary(
            uniqueKeysWithValues: self.processes.map { process in
                (
                    process.name,
                    ProcessStats.schedulerTimes(
                        process.pid, children: process.name == "postgres" || process.name == "rabbitmq")
                )
            })
    }

    /// The scheduler's times of each process between two snapshots.
    public static func difference(
        _ before: [String: [Int32: SchedulerTimes]], _ after: [String: [Int32: SchedulerTimes]]
    ) -> [String: SchedulerTimes] {
        after.reduce(into: [:]) { result, entry in
            result[entry.key] = SchedulerTimes.spent(from: before[entry.key] ?? [:], to: entry.value)
        }
    }

    /// CPU seconds spent by each process between two snapshots.
    public static func difference(_ before: [String: Double], _ after: [String: Double]) -> [String: Double] {
        after.reduce(into: [:]) { result, entry in result[entry.key] = max(0, entry.value - (before[entry.key] ?? 0)) }
    }

    public func pid(of name: String) -> Int32? { self.processes.first { $0.name == name }?.pid }
}
