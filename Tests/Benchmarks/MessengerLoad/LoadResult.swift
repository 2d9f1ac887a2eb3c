import BenchSupport
import Foundation

/// The JSON result of a run (`results/<stamp>/result.json`), read by `scripts/bench-report.py`.
struct LoadResult: Codable {
    struct Machine: Codable {
        var cores: Int
        var memoryGiB: Double
        var kernel: String
    }

    struct CeilingFigures: Codable {
        var rabbitmqPublishConfirmPerSecond: Double?
        var postgresInsertCommitPerSecond: Double?
        var redisPublishPerSecond: Double?
        /// ``SumOfParts`` for a DM, and for a message to a group of the run's group size (the
        /// group scenario's ratio is to this one; until the fifty-ninth session it was to the DM's).
        var sumOfPartsMessagesPerSecond: Double?
        var groupSumOfPartsMessagesPerSecond: Double?
        var sumOfPartsNote: String?
        /// Two threads waking each other through a pipe after 1 ms idle (``Ceilings/threadWakeUpRoundTrip(roundTrips:gap:)``).
        var threadWakeUpRoundTripP50Us: Double?
        var threadWakeUpRoundTripP99Us: Double?
    }

    var tool = "messenger-load"
    var startedAt: String
    var gitRevision: String
    var machine: Machine
    var databaseAtStart: DatabaseState?
    var databaseAtEnd: DatabaseState?
    var ceilings = CeilingFigures()
    /// The same ceilings measured again after the scenarios: how far this machine's speed moved
    /// during the run (ratios and verdicts use those measured first).
    var ceilingsAtEnd: CeilingFigures?
    var scenarios: [Scenario] = []
}

/// One scenario's outcome: rate steps, idle sockets or a reconnect storm (the fields of the
/// other kinds stay nil).
struct Scenario: Codable {
    var name: String
    var title: String
    var kind: String
    var target: String
    var met: Bool
    var verdict: String
    /// When the target is missed: what bounds the figures, from this run's own measurements.
    var bound: String?

    // rate-steps
    var groupSize: Int?
    var bestRate: Int?
    var ratioToCeiling: Double?
    var steps: [RateStep]?
    /// The latency floor's warm-up at the same rate, before the measured step.
    var warmUp: RateStep?
    /// The latency floor's DMs at a tenth of its rate, the machine otherwise idle.
    var unloaded: RateStep?

    // idle
    var connections: Int?
    var connected: Int?
    var sourceAddresses: Int?
    var gatewayRssBeforeBytes: Int?
    var gatewayRssAfterBytes: Int?
    var gatewayRssAfterCloseBytes: Int?
    var bytesPerConnection: Double?
    /// Each gateway process's part, when the sockets were spread over several.
    var gateways: [GatewayFigures]?
    var note: String?

    // storm
    var clients: Int?
    /// Connected again (CONNECT answered) after the drop.
    var reconnected: Int?
    /// Connected again and holding every message sent to the user until then.
    var resumed: Int?
    var resumedWithin10s: Int?
    var resumeSecondsP50: Double?
    var resumeSecondsP99: Double?
    var resumeSecondsMax: Double?
    /// From the drop to the CONNECT answer alone.
    var reconnectSecondsP50: Double?
    var reconnectSecondsP99: Double?
    var messagesSentDuringStorm: Int?
    var deliveriesExpected: Int?
    var deliveriesReceived: Int?
    var deliveriesWithin15s: Int?
    var lost: Int?

    init(name: String, title: String, kind: String, target: String) {
        self.name = name
        self.title = title
        self.kind = kind
        self.target = target
        self.met = false
        self.verdict = ""
    }
}

/// One offered rate held for a while: what was sent, what arrived, how late, and what it cost.
struct RateStep: Codable {
    struct Percentiles: Codable {
        var p50: Double
        var p90: Double
        var p99: Double
        var p999: Double
        var max: Double
    }

    struct AckPercentiles: Codable {
        var p50: Double
        var p99: Double
    }

    var rate: Int
    var durationSeconds: Int
    var achievedRate: Double
    var sent: Int
    /// Per-recipient deliveries expected (a message to a group of 10 has 9).
    var deliveries: Int
    var delivered: Int
    var lost: Int
    var errors: Int
    var latencyMs: Percentiles
    var ackMs: AckPercentiles
    var withinTarget: Bool
    var cpuSecondsPer1000: [String: Double]
    /// Per process, the milliseconds per message its threads spent ready to run but not yet
    /// running (``SchedulerTimes``: waiting for a busy core, or for an idle one to wake up),
    /// summed over the threads.
    var waitingForCoreMsPerMessage: [String: Double]?
    /// Per process, the times per message one of its threads was put on a core: its wake-ups
    /// (and returns after a preemption).
    var timeslicesPerMessage: [String: Double]?
    /// The seconds of the step with the slowest deliveries, slowest first.
    var slowestSeconds: [Second]?
    /// The disk's flush latency during the step (``DiskSyncProbe``).
    var diskSyncMs: DiskSyncProbe.Figures?

    /// One second of a step, by the messages' intended send times.
    struct Second: Codable {
        /// Its start on the wall clock (ISO 8601).
        var at: String
        var deliveries: Int
        var maxMs: Double
        var over25Ms: Int
        /// The slowest disk flush that began in this second or the one before (a stall delays
        /// what is sent after it began); nil when none took over 10 ms or no probe ran.
        var slowestFlushMs: Double?

        mutating func add(_ milliseconds: Double) {
            self.deliveries += 1
            self.maxMs = max(self.maxMs, milliseconds)
            if milliseconds > 25 { self.over25Ms += 1 }
        }
    }
}

extension JSONEncoder {
    /// Sorted keys, indented, for results that diff well.
    static var report: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }
}

/// One gateway process's part of the idle scenario.
struct GatewayFigures: Codable {
    var connected: Int
    var rssBeforeBytes: Int
    var rssAfterBytes: Int
    var rssAfterCloseBytes: Int
    var bytesPerConnection: Double
}
