import Foundation
import Testing

@testable import MessengerLoad

@Suite("What the load tool says bounds a missed target")
struct BoundsTests {
    @Test("throughput: the target against the sum of parts, the first step missed past the best, and the cores")
    func throughput() throws {
        let cpu = ["postgres": 0.83, "rabbitmq": 0.75, "socket-gateway": 0.64, "delivery": 0.52, "messaging": 0.46]
        let steps = [
            step(rate: 400, cpu: cpu), step(rate: 500, p99: 105.9, sent: 10_000, cpu: cpu),
            step(rate: 600, p99: 132, cpu: cpu),
        ]
        let bound = try #require(
            Bounds.throughput(steps: steps, best: 400, target: 3_000, cores: 2, sumOfParts: 1_716.5))
        #expect(bound.contains("at 500 msg/s: p99 105.9 ms"))
        #expect(bound.contains("3.20 ms of CPU per message (postgres 0.83, rabbitmq 0.75, socket-gateway 0.64 ms)"))
        #expect(bound.contains("at which the 2 cores carry at most 625 msg/s; 3,000 msg/s leaves 0.67 ms per message, 4.8x less"))
        #expect(bound.hasPrefix("3,000 msg/s is 1.7x this run's sum-of-parts ceiling (1,717 msg/s"))
        #expect(bound.contains("not the cores alone: the processes took 1.60 of the 2 cores (80 %)"))

        // A ceiling above the target is not mentioned; rates that all stayed within are said so.
        let within = try #require(
            Bounds.throughput(steps: [step(rate: 400, cpu: cpu)], best: 400, target: 3_000, cores: 2, sumOfParts: 5_000))
        #expect(within.hasPrefix("the rates tried end at 400 msg/s; not the cores alone"))
        #expect(Bounds.throughput(steps: [], best: nil, target: 3_000, cores: 2, sumOfParts: nil) == nil)
    }

    @Test("thousands are grouped")
    func grouped() {
        #expect(Bounds.grouped(0) == "0")
        #expect(Bounds.grouped(999) == "999")
        #expect(Bounds.grouped(3_000) == "3,000")
        #expect(Bounds.grouped(1_234_567) == "1,234,567")
    }
}

@Suite("The sum-of-parts ceiling")
struct SumOfPartsTests {
    @Test("a DM is 3 commits, 5 publishes and 2 Redis PUBLISHes; a group of 10 is 3, 29 and 10")
    func work() {
        #expect(SumOfParts(members: 2) == SumOfParts(commits: 3, publishes: 5, redisPublishes: 2))
        #expect(SumOfParts(members: 10) == SumOfParts(commits: 3, publishes: 29, redisPublishes: 10))
    }

    @Test("the group's ceiling is the DM's formula with the group's work, not the DM's figure")
    func groupCeiling() {
        // The fifty-eighth session's ceilings (Redis about 180,000 PUBLISHes a second).
        let dm = SumOfParts(members: 2).messagesPerSecond(rabbitmq: 11_253, postgres: 8_709, redis: 180_000)
        let group = SumOfParts(members: 10).messagesPerSecond(rabbitmq: 11_253, postgres: 8_709, redis: 180_000)
        #expect(abs(dm - 1_251) < 2, "\(dm)")
        #expect(abs(group - 336) < 2, "\(group)")
        #expect(SumOfParts(members: 2).messagesPerSecond(rabbitmq: 0, postgres: 1, redis: 1) == 0)
    }
}
