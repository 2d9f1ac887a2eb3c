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
