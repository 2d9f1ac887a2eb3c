import Foundation
import MessengerServiceKit

/// The delivery service's settings, read once at start.
struct DeliverySettings: Sendable {
    /// How long an unacknowledged event stays buffered for catch-up (`DELIVERY_RETENTION_SECONDS`,
    /// default 7 days).
    var retention: Duration
    /// The delays between pushes of an unacknowledged event (`DELIVERY_RETRY_DELAYS_MS`, default
    /// `2000,10000,60000,300000`); after the last, the event goes to the dead-letter queue.
    var retryDelays: [Duration]
    /// How often expired events are pruned (`DELIVERY_PRUNE_INTERVAL_SECONDS`, default 600).
    var pruneInterval: Duration
    /// The pushes a replica holds unconfirmed, at most (`DELIVERY_PUSH_BYTES_IN_FLIGHT`, default
    /// 64 MiB; ``PushBudget``): a batch is recorded in chunks of a quarter of it.
    var pushBytesInFlight: Int

    init(environment: ServiceEnvironment) throws {
        self.retention = .seconds(try environment.int("DELIVERY_RETENTION_SECONDS", default: 7 * 86_400, in: 60...(365 * 86_400)))
        let delays = environment.string("DELIVERY_RETRY_DELAYS_MS", default: "2000,10000,60000,300000")
        let parsed = delays.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parsed.isEmpty, parsed.count <= 10, parsed.allSatisfy({ ($0 ?? 0) >= 100 && ($0 ?? 0) <= 86_400_000 }) else {
            throw ConfigurationError(
                variable: "DELIVERY_RETRY_DELAYS_MS", problem: "must be 1 to 10 comma-separated delays from 100 to 86400000 ms")
        }
        self.retryDelays = parsed.map { .milliseconds($0!) }
        self.pruneInterval = .seconds(try environment.int("DELIVERY_PRUNE_INTERVAL_SECONDS", default: 600, in: 1...86_400))
        self.pushBytesInFlight = try environment.int(
            "DELIVERY_PUSH_BYTES_IN_FLIGHT", default: 64 << 20, in: (64 << 10)...(4 << 30))
    }
}
