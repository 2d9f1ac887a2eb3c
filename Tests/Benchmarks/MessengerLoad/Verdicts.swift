import BenchSupport
import Foundation

/// The issue's targets, in one place.
enum Targets {
    static let floorP50Ms = 5.0
    static let floorP99Ms = 25.0
    static let floorP999Ms = 60.0
    /// A rate step is within target when its p99 is at most this, nothing is lost and nothing fails.
    static let stepP99Ms = 100.0
    static let throughput = 3_000
    static let shareOfSumOfParts = 0.5
    static let idleBytesPerConnection = 10 * 1024
    static let idleConnections = 50_000
    static let stormResumedShare = 0.99
    static let stormResumeSeconds = 10.0

    static let floorText = String(
        format: "p50 <= %.0f ms, p99 <= %.0f ms, p99.9 <= %.0f ms", floorP50Ms, floorP99Ms, floorP999Ms)
    static let stepText = String(format: "p99 <= %.0f ms", stepP99Ms)
    static let throughputText = String(
        format: ">= %@ msg/s with %@, and >= %.0f %% of the sum-of-parts ceiling", Bounds.grouped(throughput) as NSString,
        stepText as NSString, shareOfSumOfParts * 100)
    static let idleText =
        "gateway RSS <= \(idleBytesPerConnection / 1024) KiB per connection (at \(idleConnections / 1000)k connections)"
    static let stormText = String(
        format: "%.0f %% resumed within %.0f s, 0 events lost", stormResumedShare * 100, stormResumeSeconds)
}

/// How each scenario's figures are judged against its target and said in its verdict: from the
/// figures alone, so that what the report claims is tested without a run.
extension Scenario {
    /// The latency floor: p50, p99 and p99.9 within their targets, nothing lost, no errors.
    mutating func judgeFloor(_ step: RateStep) {
        let latency = step.latencyMs
        self.steps = [step]
        self.met =
            latency.p50 <= Targets.floorP50Ms && latency.p99 <= Targets.floorP99Ms && latency.p999 <= Targets.floorP999Ms
            && step.lost == 0 && step.errors == 0
        self.verdict = String(
            format: "p50 %.1f ms (%.1fx the target), p99 %.1f ms (%.1fx), p99.9 %.1f ms (%.1fx); %d lost, %d errors",
            latency.p50, latency.p50 / Targets.floorP50Ms, latency.p99, latency.p99 / Targets.floorP99Ms, latency.p999,
            latency.p999 / Targets.floorP999Ms, step.lost, step.errors)
    }

    /// Sustained throughput: the best step within target at 3,000 msg/s or more, and at least half
    /// of the same run's sum-of-parts ceiling.
    mutating func judgeThroughput(_ steps: [RateStep], sumOfParts: Double?) {
        self.steps = steps
        self.bestRate = steps.filter(\.withinTarget).map(\.rate).max()
        let best = self.bestRate ?? 0
        self.ratioToCeiling = sumOfParts.flatMap { $0 > 0 ? Double(best) / $0 : nil }
        let ratio =
            self.ratioToCeiling.map { String(format: "%.0f %% of the sum-of-parts ceiling", $0 * 100) }
            ?? "no ceiling measured"
        self.met = best >= Targets.throughput && (self.ratioToCeiling ?? 0) >= Targets.shareOfSumOfParts
        self.verdict =
            best > 0
            ? String(
                format: "best %d msg/s (%.0f %% of %@), %@", best, 100 * Double(best) / Double(Targets.throughput),
                Bounds.grouped(Targets.throughput) as NSString, ratio as NSString)
            : "no step stayed within \(Targets.stepText) with nothing lost"
    }

    /// Idle sockets: the gateways' RSS growth per connection, with every connection asked for open.
    mutating func judgeIdle(_ outcomes: [IdleSockets.GatewayOutcome], requested: Int) {
        let connected = outcomes.reduce(0) { $0 + $1.connected }
        let before = outcomes.reduce(0) { $0 + $1.before }
        let after = outcomes.reduce(0) { $0 + $1.after }
        let afterClose = outcomes.reduce(0) { $0 + $1.afterClose }
        let perConnection = Double(after - before) / Double(max(connected, 1))
        self.connections = requested
        self.connected = connected
        self.sourceAddresses = outcomes.count
        self.gatewayRssBeforeBytes = before
        self.gatewayRssAfterBytes = after
        self.gatewayRssAfterCloseBytes = afterClose
        self.bytesPerConnection = perConnection
        self.gateways = outcomes.map {
            .init(
                connected: $0.connected, rssBeforeBytes: $0.before, rssAfterBytes: $0.after,
                rssAfterCloseBytes: $0.afterClose,
                bytesPerConnection: Double($0.after - $0.before) / Double(max($0.connected, 1)))
        }
        self.met =
            perConnection <= Double(Targets.idleBytesPerConnection) && connected >= Targets.idleConnections
            && connected == requested
        self.verdict = String(
            format:
                "%.1f KiB per connection (%.2fx the target) at %d connections over %d gateway%@; RSS %d -> %d MiB (%.1f KiB per connection with the processes' own memory), %d MiB after closing",
            perConnection / 1024, perConnection / Double(Targets.idleBytesPerConnection), connected, outcomes.count,
            outcomes.count == 1 ? "" : "s", before >> 20, after >> 20, Double(after) / Double(max(connected, 1)) / 1024,
            afterClose >> 20)
        if connected < requested { self.verdict += "; \(requested - connected) of \(requested) never connected" }
    }

    /// The reconnect storm: 99 % of the sockets resumed (connected again and caught up) within
    /// 10 s of the drop, and every message reached every socket of its user.
    mutating func judgeStorm(_ outcome: ReconnectStorm.Outcome) {
        let times = outcome.resumeTimes.map(\.seconds).sorted()
        let reconnectTimes = outcome.reconnectTimes.map(\.seconds).sorted()
        let within = times.filter { $0 <= Targets.stormResumeSeconds }.count
        self.clients = outcome.clients
        self.reconnected = outcome.reconnected
        self.resumed = times.count
        self.resumedWithin10s = within
        self.resumeSecondsP50 = times.percentile(0.5)
        self.resumeSecondsP99 = times.percentile(0.99)
        self.resumeSecondsMax = times.last
        self.reconnectSecondsP50 = reconnectTimes.percentile(0.5)
        self.reconnectSecondsP99 = reconnectTimes.percentile(0.99)
        self.messagesSentDuringStorm = outcome.sent
        self.deliveriesExpected = outcome.expected
        self.deliveriesReceived = outcome.received
        self.deliveriesWithin15s = outcome.receivedInTime
        self.lost = outcome.expected - outcome.received
        self.met =
            outcome.clients > 0 && Double(within) >= Targets.stormResumedShare * Double(outcome.clients)
            && outcome.received == outcome.expected
        let resumeTimes =
            if let p50 = times.percentile(0.5), let p99 = times.percentile(0.99) {
                String(format: "p50 %.2f s, p99 %.2f s", p50, p99)
            } else {
                "no socket resumed; \(outcome.reconnected) of \(outcome.clients) connected again"
            }
        self.verdict = String(
            format:
                "%.1f %% resumed (connected again and caught up) within %.0f s (%@); %d of %d deliveries never arrived, %d arrived more than 15 s after the last send",
            100 * Double(within) / Double(max(outcome.clients, 1)), Targets.stormResumeSeconds, resumeTimes as NSString,
            outcome.expected - outcome.received, outcome.expected, outcome.received - outcome.receivedInTime)
    }
}
