import Logging
import MessengerContracts
import MessengerPostgres
import ServiceLifecycle
import ThreadedIO

/// Runs a service's start-up steps (migrations, topology), retrying them with backoff while a
/// dependency is still coming up, then marks the service ready, logs one readiness line, and runs
/// its workers (RPC servers, consumers) until shutdown, and its followers (outbox relays) until
/// the workers have stopped: what the workers commit while they finish at a graceful shutdown
/// is still published. Until the forty-fifth session the relays stopped at the shutdown's start,
/// and the events of the commands the RPC server was finishing waited in the outbox until the
/// service started again (review).
public struct ServiceStartup: Service {
    private let ready: ReadyFlag
    private let logger: Logger
    private let readyMessage: Logger.Message
    private let steps: @Sendable () async throws -> Void
    private let workers: [any Service]
    private let followers: [any Service]
    /// How long start-up may keep failing before the process gives up.
    private let patience: Duration

    public init(
        ready: ReadyFlag, logger: Logger, readyMessage: Logger.Message, patience: Duration = .seconds(60),
        steps: @escaping @Sendable () async throws -> Void, workers: [any Service], followers: [any Service] = []
    ) {
        self.ready = ready
        self.logger = logger
        self.readyMessage = readyMessage
        self.patience = patience
        self.steps = steps
        self.workers = workers
        self.followers = followers
    }

    public func run() async throws {
        // A shutdown during start-up (a server still unreachable) ends it at once, without the
        // workers: until the thirty-eighth session SIGTERM waited for the start-up's patience.
        do {
            try await cancelWhenGracefulShutdown { try await self.start() }
        } catch {
            guard Task.isShuttingDownGracefully else { throw error }
            self.logger.notice("shut down during start-up")
            return
        }
        self.ready.set()
        self.logger.notice(self.readyMessage)
        // Detached, so without the graceful shutdown's task local: a follower stops when it is
        // cancelled, once the workers are done (or the service fails or is cancelled).
        let followers = self.followers
        let following = Task.detached {
            try await withThrowingDiscardingTaskGroup { group in
                for follower in followers {
                    group.addTask { try await follower.run() }
                }
            }
        }
        do {
            try await withTaskCancellationHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    for worker in self.workers {
                        group.addTask { try await worker.run() }
                    }
                }
            } onCancel: {
                following.cancel()
            }
        } catch {
            following.cancel()
            _ = try? await following.value
            throw error
        }
        following.cancel()
        try await following.value
    }

    /// Runs the start-up steps, retrying them with backoff for up to ``patience``.
    private func start() async throws {
        let deadline = ContinuousClock.now + self.patience
        var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(3))
        while true {
            do {
                try await self.steps()
                return
            } catch {
                guard ContinuousClock.now < deadline, !Task.isCancelled, Self.mayRetry(error) else { throw error }
                self.logger.warning("start-up step failed, retrying", metadata: [LogKey.error: "\(LoggedError(error))"])
                try await Task.sleep(for: backoff.next())
            }
        }
    }

    /// Whether waiting may help: a database still coming up or unreachable may come, while a
    /// migration the server refuses, an edited one, or a bad configuration will not get better.
    static func mayRetry(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return true }
        return error.code == .connectionLost || error.code == .noConnection
    }
}
