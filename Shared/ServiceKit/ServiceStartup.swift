import Logging
import MessengerContracts
import MessengerPostgres
import ServiceLifecycle
import ThreadedIO

/// Runs a service's start-up steps (migrations, topology), retrying them with backoff while a
/// dependency is still coming up, then marks the service ready, logs one readiness line, and runs
/// its workers (RPC servers, consumers) until shutdown.
public struct ServiceStartup: Service {
    private let ready: ReadyFlag
    private let logger: Logger
    private let readyMessage: Logger.Message
    private let steps: @Sendable () async throws -> Void
    private let workers: [any Service]
    /// How long start-up may keep failing before the process gives up.
    private let patience: Duration

    public init(
        ready: ReadyFlag, logger: Logger, readyMessage: Logger.Message, patience: Duration = .seconds(60),
        steps: @escaping @Sendable () async throws -> Void, workers: [any Service]
    ) {
        self.ready = ready
        self.logger = logger
        self.readyMessage = readyMessage
        self.patience = patience
        self.steps = steps
        self.workers = workers
    }

    public func run() async throws {
        let deadline = ContinuousClock.now + self.patience
        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(3))
        while true {
            do {
                try await self.steps()
                break
            } catch {
                // A migration the server refuses or an edited one will not get better by waiting.
                guard ContinuousClock.now < deadline, !Task.isCancelled, !(error is DatabaseError) else { throw error }
                self.logger.warning("start-up step failed, retrying", metadata: [LogKey.error: "\(String(reflecting: error))"])
                try await Task.sleep(for: backoff.next())
            }
        }
        self.ready.set()
        self.logger.notice(self.readyMessage)
        try await withThrowingDiscardingTaskGroup { group in
            for worker in self.workers {
                group.addTask { try await worker.run() }
            }
        }
    }
}
