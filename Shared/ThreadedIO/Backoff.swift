/// Capped exponential backoff with jitter (each delay is 50-100 % of its ceiling), for reconnecting to a server that went away.
public struct Backoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    private var attempt = 0

    public init(initial: Duration = .milliseconds(100), maximum: Duration = .seconds(5)) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before the next attempt; grows twofold per failure up to `maximum`.
    public mutating func next() -> Duration {
        let exponent = min(self.attempt, 20)
        self.attempt += 1
        let ceiling = min(self.initial * (1 << exponent), self.maximum)
        let jittered = Double(Self.milliseconds(ceiling)) * Double.random(in: 0.5...1.0)
        return .milliseconds(Int64(jittered))
    }

    /// Starts over after a success.
    public mutating func reset() {
        self.attempt = 0
    }

    /// A duration in whole milliseconds, saturated at about ±292 million years rather than
    /// trapping.
    public static func milliseconds(_ duration: Duration) -> Int {
        let limit = Int64.max / 1000 - 1
        let seconds = min(max(duration.components.seconds, -limit), limit)
        return Int(seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}
