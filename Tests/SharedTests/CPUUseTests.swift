import BenchSupport
import Testing

@Suite("The load tool's CPU accounting")
struct CPUUseTests {
    @Test("per-process CPU seconds per 1,000 messages add up to busy cores and a rate the cores allow")
    func busyCoresAndRate() {
        let use = CPUUse(
            cpuSecondsPer1000: ["postgres": 1.0, "rabbitmq": 1.5, "socket-gateway": 0.5, "redis": 0.0], rate: 400, cores: 2)
        #expect(use.perMessageMs == 3.0)
        #expect(use.busyCores == 1.2)
        #expect(abs(use.busyShare - 0.6) < 1e-9)
        #expect(abs(use.rateAtFullMachine - 2000.0 / 3) < 1e-9)
        #expect(abs(use.budgetMs(atRate: 3000) - 2.0 / 3) < 1e-9)
        #expect(use.shares.map(\.process) == ["rabbitmq", "postgres", "socket-gateway", "redis"])
        #expect(use.busyText == "1.20 of the 2 cores (60 %)")
        #expect(use.largestText(2) == "rabbitmq 1.50, postgres 1.00 ms")
    }

    @Test("nothing measured gives zeros, not a division by zero")
    func empty() {
        let use = CPUUse(cpuSecondsPer1000: [:], rate: 0, cores: 0)
        #expect(use.perMessageMs == 0 && use.busyShare == 0 && use.rateAtFullMachine == 0 && use.budgetMs(atRate: 0) == 0)
    }
}
