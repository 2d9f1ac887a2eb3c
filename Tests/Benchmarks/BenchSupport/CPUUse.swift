import Foundation

/// How much of the machine's CPU a load step took, from each process's CPU seconds per 1,000
/// messages (which is the same number as CPU milliseconds per message): what says whether a
/// rate was bounded by the cores, and how far the cost per message is from a target rate.
public struct CPUUse: Sendable, Equatable {
    /// One process's share of the cost of a message.
    public struct Share: Sendable, Equatable {
        public var process: String
        /// CPU milliseconds per message.
        public var milliseconds: Double
    }

    /// Every process's share, largest first.
    public var shares: [Share]
    /// The step's achieved rate, messages per second.
    public var rate: Double
    /// The machine's cores.
    public var cores: Int

    /// - Parameters:
    ///   - cpuSecondsPer1000: each process's CPU seconds per 1,000 messages sent.
    ///   - rate: the step's achieved rate, messages per second.
    ///   - cores: the machine's cores.
    public init(cpuSecondsPer1000: [String: Double], rate: Double, cores: Int) {
        self.shares = cpuSecondsPer1000.map { Share(process: $0.key, milliseconds: $0.value) }
            .sorted { ($0.milliseconds, $1.process) > ($1.milliseconds, $0.process) }
        self.rate = rate
        self.cores = cores
    }

    /// CPU milliseconds per message, every measured process together.
    public var perMessageMs: Double { self.shares.reduce(0) { $0 + $1.milliseconds } }

    /// Cores busy on average during the step.
    public var busyCores: Double { self.perMessageMs * self.rate / 1000 }

    /// The share of the machine's cores that was busy.
    public var busyShare: Double { self.cores > 0 ? self.busyCores / Double(self.cores) : 0 }

    /// The rate at which the machine's cores would all be busy, at this cost per message.
    public var rateAtFullMachine: Double { self.perMessageMs > 0 ? Double(self.cores) * 1000 / self.perMessageMs : 0 }

    /// The CPU milliseconds per message that `rate` messages per second would leave on the
    /// machine's cores, all of them busy.
    public func budgetMs(atRate rate: Double) -> Double { rate > 0 ? Double(self.cores) * 1000 / rate : 0 }

    /// The busy cores as text: "1.86 of the 2 cores (93 %)".
    public var busyText: String {
        "\(Self.format(self.busyCores, digits: 2)) of the \(self.cores) cores (\(Self.format(self.busyShare * 100, digits: 0)) %)"
    }

    /// The largest shares as text: "rabbitmq 1.10, postgres 1.02, socket-gateway 0.76 ms".
    public func largestText(_ count: Int = 3) -> String {
        self.shares.prefix(count).map { "\($0.process) \(Self.format($0.milliseconds, digits: 2))" }
            .joined(separator: ", ") + " ms"
    }

    static func format(_ value: Double, digits: Int) -> String { String(format: "%.\(digits)f", value) }
}
