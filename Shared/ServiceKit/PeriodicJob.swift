import Logging
import MessengerContracts
import ServiceLifecycle

/// Work a service repeats every `interval` until it shuts down: pruning what has expired,
/// cleaning up after failures. A round that fails is logged, and the next one comes on time;
/// the work must therefore be safe to run again after a partial round.
public struct PeriodicJob: Service {
    /// What the job does, for the logs (`auth pruning`).
    public let name: String
    public let interval: Duration
    let logger: Logger
    let round: @Sendable () async throws -> Void

    public init(_ name: String, every interval: Duration, logger: Logger, round: @escaping @Sendable () async throws -> Void) {
        self.name = name
        self.interval = interval
        self.logger = logger
        self.round = round
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while (try? await Task.sleep(for: self.interval)) != nil {
                do {
                    try await self.round()
                } catch {
                    self.logger.warning(
                        "a periodic job failed; it runs again later",
                        metadata: ["job": "\(self.name)", "error": "\(LoggedError(error))"])
                }
            }
        }
    }
}
