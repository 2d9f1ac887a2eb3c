import Foundation
import Testing

@testable import MessengerLoad

/// A rate step with the figures a verdict reads; the rest zero.
func step(
    rate: Int, p50: Double = 1, p99: Double = 2, p999: Double = 3, sent: Int = 100, lost: Int = 0, errors: Int = 0,
    cpu: [String: Double] = [:]
) -> RateStep {
    RateStep(
        rate: rate, durationSeconds: 1, achievedRate: Double(rate), sent: sent, deliveries: sent, delivered: sent - lost,
        lost: lost, errors: errors, latencyMs: .init(p50: p50, p90: p99, p99: p99, p999: p999, max: p999),
        ackMs: .init(p50: 1, p99: 2), withinTarget: lost == 0 && errors == 0 && p99 <= Targets.stepP99Ms,
        cpuSecondsPer1000: cpu)
}

@Suite("The load tool's verdicts")
struct VerdictTests {
    @Test("the floor is met only with p50, p99 and p99.9 within target and nothing lost")
    func floor() {
        var scenario = Scenario(name: "latency-floor", title: "floor", kind: "rate-steps", target: "")
        scenario.judgeFloor(step(rate: 200, p50: 4.5, p99: 17.3, p999: 26.6))
        #expect(scenario.met)
        #expect(scenario.verdict == "p50 4.5 ms (0.9x the target), p99 17.3 ms (0.7x), p99.9 26.6 ms (0.4x); 0 lost, 0 errors")

        scenario.judgeFloor(step(rate: 200, p50: 13.3, p99: 53.4, p999: 113.9))
        #expect(!scenario.met)
        #expect(scenario.verdict.hasPrefix("p50 13.3 ms (2.7x the target), p99 53.4 ms (2.1x), p99.9 113.9 ms (1.9x)"))

        scenario.judgeFloor(step(rate: 200, p50: 4, p99: 10, p999: 20, lost: 1))
        #expect(!scenario.met)
        #expect(scenario.verdict.hasSuffix("1 lost, 0 errors"))
    }

    @Test("throughput: the best rate within target, against 3,000 msg/s and half the sum of parts")
    func throughput() {
        var scenario = Scenario(name: "throughput-dm", title: "DMs", kind: "rate-steps", target: "")
        let steps = [step(rate: 300), step(rate: 400), step(rate: 500, p99: 105.9), step(rate: 600, p99: 132)]
        scenario.judgeThroughput(steps, sumOfParts: 1716.5)
        #expect(scenario.bestRate == 400)
        #expect(!scenario.met)
        #expect(scenario.verdict == "best 400 msg/s (13 % of 3,000), 23 % of the sum-of-parts ceiling")

        // A step within target after a miss counts: the best is the highest rate within target.
        scenario.judgeThroughput(
            [step(rate: 300), step(rate: 400, lost: 1), step(rate: 500)], sumOfParts: nil)
        #expect(scenario.bestRate == 500)
        #expect(scenario.ratioToCeiling == nil)
        #expect(scenario.verdict == "best 500 msg/s (17 % of 3,000), no ceiling measured")

        scenario.judgeThroughput([step(rate: 3_000)], sumOfParts: 5_000)
        #expect(scenario.met)
        scenario.judgeThroughput([step(rate: 3_000)], sumOfParts: 7_000)
        #expect(!scenario.met, "3,000 msg/s is under half of a 7,000 msg/s ceiling")
        scenario.judgeThroughput([step(rate: 3_500, errors: 1)], sumOfParts: 5_000)
        #expect(!scenario.met && scenario.bestRate == nil)
        #expect(scenario.verdict == "no step stayed within p99 <= 100 ms with nothing lost")
    }

    @Test("idle sockets: RSS growth per connection, at 50,000 connections all open")
    func idle() {
        var scenario = Scenario(name: "idle-sockets", title: "idle", kind: "idle", target: "")
        let mib = 1 << 20
        let half = IdleSockets.GatewayOutcome(
            connected: 25_000, before: 40 * mib, after: 40 * mib + 25_000 * 6_246, afterClose: 120 * mib)
        scenario.judgeIdle([half, half], requested: 50_000)
        #expect(scenario.met)
        #expect(scenario.connected == 50_000 && scenario.gateways?.count == 2)
        #expect(scenario.verdict.hasPrefix("6.1 KiB per connection (0.61x the target) at 50000 connections over 2 gateways"))

        var short = half
        short.connected = 24_000
        scenario.judgeIdle([half, short], requested: 50_000)
        #expect(!scenario.met)
        #expect(scenario.verdict.hasSuffix("1000 of 50000 never connected"))

        scenario.judgeIdle(
            [IdleSockets.GatewayOutcome(connected: 200, before: 0, after: 200 * 1_024, afterClose: 0)], requested: 200)
        #expect(!scenario.met, "200 connections say nothing of 50,000")
    }

    @Test("the storm: 99 % resumed within 10 s and every delivery made")
    func storm() {
        var scenario = Scenario(name: "reconnect-storm", title: "storm", kind: "storm", target: "")
        let resumed = (0..<100).map { Duration.milliseconds(5_000 + $0 * 10) }
        let outcome = ReconnectStorm.Outcome(
            clients: 100, reconnected: 100, reconnectTimes: resumed, resumeTimes: resumed, sent: 2_000, expected: 20_000,
            received: 20_000, receivedInTime: 20_000)
        scenario.judgeStorm(outcome)
        #expect(scenario.met)
        #expect(scenario.resumedWithin10s == 100 && scenario.lost == 0)
        #expect(
            scenario.verdict.hasPrefix("100.0 % resumed (connected again and caught up) within 10 s (p50 5.50 s, p99 5.99 s)"))

        var late = outcome
        late.resumeTimes = resumed.dropLast(2) + [.seconds(11), .seconds(12)]
        scenario.judgeStorm(late)
        #expect(!scenario.met, "98 % within 10 s")

        var lost = outcome
        lost.received = 19_999
        lost.receivedInTime = 19_999
        scenario.judgeStorm(lost)
        #expect(!scenario.met)
        #expect(scenario.verdict.hasSuffix("1 of 20000 deliveries never arrived, 0 arrived more than 15 s after the last send"))

        // Sockets that never dropped (or never came back) resumed nothing: said as such.
        var none = outcome
        none.reconnected = 0
        none.reconnectTimes = []
        none.resumeTimes = []
        scenario.judgeStorm(none)
        #expect(!scenario.met)
        #expect(
            scenario.verdict.hasPrefix(
                "0.0 % resumed (connected again and caught up) within 10 s (no socket resumed; 0 of 100 connected again)"))
    }

    @Test("the storm's sockets drop while messages still flow, however short the storm")
    func stormDrop() {
        #expect(ReconnectStorm.dropAfter(seconds: 20) == .seconds(5))
        #expect(ReconnectStorm.dropAfter(seconds: 60) == .seconds(5))
        #expect(ReconnectStorm.dropAfter(seconds: 4) == .seconds(1))
        #expect(ReconnectStorm.dropAfter(seconds: 3) == .milliseconds(750))
        #expect(ReconnectStorm.dropAfter(seconds: 0) == .milliseconds(250))
    }
}

@Suite("The load tool's targets")
struct TargetTests {
    @Test("the targets read as the issue states them")
    func texts() {
        #expect(Targets.floorText == "p50 <= 5 ms, p99 <= 25 ms, p99.9 <= 60 ms")
        #expect(Targets.throughputText == ">= 3,000 msg/s with p99 <= 100 ms, and >= 50 % of the sum-of-parts ceiling")
        #expect(Targets.idleText == "gateway RSS <= 10 KiB per connection (at 50k connections)")
        #expect(Targets.stormText == "99 % resumed within 10 s, 0 events lost")
    }
}
