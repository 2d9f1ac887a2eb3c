import Logging
import MessengerContracts
import NIOCore
import NIOPosix
import PostgresNIO
import ServiceLifecycle
import Synchronization
import ThreadedIO

/// A service's PostgreSQL: postgres-nio's connection pool, with every call guarded so that a
/// connection lost under it cannot leave the caller waiting forever.
///
/// postgres-nio (1.33) hands each statement to its connection's channel without a write
/// promise. When the connection closes between the lease and that write (the server crashed or
/// restarted), the channel's pipeline is already gone, the write is dropped, and the statement's
/// promise is never completed: its caller waits forever, holding whatever it holds. Messaging's
/// batch writer held every later message of its thread that way after a crash of PostgreSQL
/// (Tests/e2e/test_crash_under_load.py found it).
///
/// So each call runs in a task of its own while the caller waits for its outcome, and a watchdog
/// looks at the calls in flight four times a second. A closed connection fails its statements at
/// once, so a call whose connection has been closed for a whole look was dropped: the watchdog
/// fails it with ``DatabaseError/Code/connectionLost``, and its task is cancelled. A call on an
/// open connection is never failed by the watchdog, however long it takes; a call still waiting
/// for a connection after ``leaseLimit`` is (postgres-nio's pool can leave a request waiting when
/// its last connection fails under it), and so is one made for a request whose caller stopped
/// waiting (``RequestDeadline``) while it waited.
public final class Database: Service, Sendable {
    /// A call in flight: when it began, the connection it leased once it has one, its task, and
    /// how to fail its caller.
    private struct Call: Sendable {
        let started: ContinuousClock.Instant
        /// Until when it may wait for a connection: ``leaseLimit`` after it began, or its
        /// request's deadline if that comes first.
        let leaseDeadline: ContinuousClock.Instant
        var connection: PostgresConnection?
        var seenClosed = false
        /// The call closes its connection itself (``closingIfPreparationFailed(_:_:_:)``): not a
        /// connection lost under it.
        var closesItsConnection = false
        var task: Task<Void, Never>?
        let fail: @Sendable (any Error) -> Void
    }

    /// What a call's operation tells the watchdog.
    private struct CallWatch: Sendable {
        /// The connection the call leased, watched from then on.
        let register: @Sendable (PostgresConnection) throws -> Void
        /// The call is about to close its connection itself.
        let closing: @Sendable () -> Void
    }

    /// The pool (for what this type does not wrap; its calls are not guarded).
    public let client: PostgresClient
    private let logger: Logger
    private let calls = Mutex<(next: UInt64, inFlight: [UInt64: Call])>((0, [:]))
    /// How long a call may wait for a connection from the pool before it fails.
    let leaseLimit: Duration
    static let watchInterval: TimeAmount = .milliseconds(250)

    public init(client: PostgresClient, leaseLimit: Duration = .seconds(15), logger: Logger) {
        self.client = client
        self.leaseLimit = leaseLimit
        self.logger = logger
    }

    /// Runs the pool, and the watchdog for as long as the pool runs.
    public func run() async throws {
        let watchdog = MultiThreadedEventLoopGroup.singleton.any().scheduleRepeatedTask(
            initialDelay: Self.watchInterval, delay: Self.watchInterval
        ) { _ in self.failDroppedCalls() }
        defer { watchdog.cancel() }
        // The pool arms a timer each time a connection comes back: on a loop, not Dispatch.
        await withTaskExecutorPreference(LoopTaskExecutor.shared) {
            await self.client.run()
        }
    }

    /// `PostgresClient.withConnection`, guarded.
    public func withConnection<Result: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await self.guarded { watch in
            try await self.client.withConnection { connection in
                try watch.register(connection)
                return try await self.closingIfPreparationFailed(connection, watch) { try await body(connection) }
            }
        }
    }

    /// Runs statements on a connection the caller holds for long (the outbox relay's, leased from
    /// ``client``), guarded as the calls that lease one are. `statements` should run statements
    /// only: the watchdog may fail the caller once the connection closed, while they still run.
    public func run<Result: Sendable>(
        on connection: PostgresConnection, _ statements: @escaping @Sendable () async throws -> Result
    ) async throws -> Result {
        try await self.guarded { watch in
            try watch.register(connection)
            return try await self.closingIfPreparationFailed(connection, watch, statements)
        }
    }

    /// Runs `body`, and closes `connection` when it fails with an error that may have been a
    /// statement's failed preparation (``mayHaveFailedPreparation(_:)``): postgres-nio would fail
    /// that statement on this connection for good, so the pool opens another instead. The
    /// watchdog is told first: a close that takes a moment (a busy event loop) would otherwise
    /// look like a connection lost under the call, and its caller would get `connection_lost`
    /// instead of the error.
    private func closingIfPreparationFailed<Result: Sendable>(
        _ connection: PostgresConnection, _ watch: CallWatch, _ body: @Sendable () async throws -> Result
    ) async throws -> Result {
        do {
            return try await body()
        } catch  where Self.mayHaveFailedPreparation(error) && !connection.isClosed {
            self.logger.warning(
                "closing a database connection whose prepared statements may have failed to prepare",
                metadata: [LogKey.error: "\(LoggedError(error))"])
            watch.closing()
            try? await connection.close()
            throw error
        }
    }

    /// `PostgresClient.withTransaction`, guarded: commits when `body` returns, rolls back when it
    /// throws (the error comes wrapped in a `PostgresTransactionError`).
    public func withTransaction<Result: Sendable>(
        logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await self.withConnection { connection in
            try await connection.withTransaction(logger: logger) { try await body($0) }
        }
    }

    /// Like ``withTransaction(logger:_:)``, but rethrows the body's own error (a `ServiceError`
    /// stays a `ServiceError`), where `withTransaction` would wrap it.
    public func transaction<Result: Sendable>(
        logger: Logger, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        do {
            return try await self.withTransaction(logger: logger, body)
        } catch let error as PostgresTransactionError {
            if let closureError = error.closureError { throw closureError }
            throw error
        }
    }

    /// `PostgresClient.query`, guarded: the rows, read in full on a pooled connection (decode
    /// them as postgres-nio's: `for try await (id, name) in rows.decode((UUID, String).self)`).
    @discardableResult
    public func query(_ query: PostgresQuery, logger: Logger) async throws -> Rows {
        try await self.withConnection { connection in
            Rows(rows: try await connection.query(query, logger: logger).collect())
        }
    }

    /// The rows of a ``query(_:logger:)``, already read: an `AsyncSequence` of `PostgresRow`, so
    /// that postgres-nio's `decode` applies to it as to its own row sequence.
    public struct Rows: AsyncSequence, Sendable {
        public typealias Element = PostgresRow
        let rows: [PostgresRow]

        public struct AsyncIterator: AsyncIteratorProtocol {
            var rows: IndexingIterator<[PostgresRow]>
            public mutating func next() async -> PostgresRow? { self.rows.next() }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rows: self.rows.makeIterator()) }
    }

    /// Runs `operation` in a task of its own, and returns its outcome, or the watchdog's error if
    /// the connection it registered closed under it and it did not end. The caller's cancellation
    /// is passed on to the task, whose outcome the caller still gets (as postgres-nio's caller
    /// would: a transaction cancelled too late to roll back returns its commit).
    private func guarded<Result: Sendable>(
        _ operation:
            @escaping @Sendable (_ watch: CallWatch) async throws -> Result
    ) async throws -> Result {
        let promise = Promise<Result>()
        let id = self.calls.withLock { calls in
            calls.next += 1
            let now = ContinuousClock.now
            let leaseDeadline = min(now + self.leaseLimit, RequestDeadline.current ?? now + self.leaseLimit)
            calls.inFlight[calls.next] = Call(started: now, leaseDeadline: leaseDeadline, fail: promise.fail)
            return calls.next
        }
        let task = Task {
            let result: Swift.Result<Result, any Error>
            do {
                let watch = CallWatch(
                    register: { connection in
                        // The watchdog may have failed the call (no connection in time) just before
                        // the pool handed it one: its caller was told nothing ran, so nothing may.
                        try self.calls.withLock { calls in
                            guard calls.inFlight[id] != nil else {
                                throw DatabaseError(.noConnection, "the connection came after the call was failed")
                            }
                            calls.inFlight[id]?.connection = connection
                        }
                    },
                    closing: { self.calls.withLock { $0.inFlight[id]?.closesItsConnection = true } })
                result = .success(try await operation(watch))
            } catch {
                result = .failure(error)
            }
            self.calls.withLock { _ = $0.inFlight.removeValue(forKey: id) }
            promise.complete(result)
        }
        self.calls.withLock { $0.inFlight[id]?.task = task }
        return try await withTaskCancellationHandler {
            try await promise.outcome()
        } onCancel: {
            task.cancel()
        }
    }

    /// The watchdog's look: fails the calls whose connection was already closed at the last look,
    /// and those that waited for a connection longer than ``leaseLimit``, and cancels their tasks.
    func failDroppedCalls() {
        let now = ContinuousClock.now
        let (dropped, unleased) = self.calls.withLock { calls -> ([Call], [Call]) in
            var dropped: [Call] = []
            var unleased: [Call] = []
            for (id, call) in calls.inFlight {
                if let connection = call.connection {
                    guard connection.isClosed, !call.closesItsConnection else { continue }
                    if call.seenClosed {
                        dropped.append(call)
                        calls.inFlight.removeValue(forKey: id)
                    } else {
                        calls.inFlight[id]?.seenClosed = true
                    }
                } else if now > call.leaseDeadline {
                    unleased.append(call)
                    calls.inFlight.removeValue(forKey: id)
                }
            }
            return (dropped, unleased)
        }
        if !dropped.isEmpty {
            self.logger.warning(
                "database calls on a closed connection never ended; failing them", metadata: ["calls": "\(dropped.count)"])
            for call in dropped {
                call.fail(DatabaseError(.connectionLost, "the connection closed and the statement was never answered"))
                // A transaction body awaiting something else (a broker's confirm) stops too,
                // instead of waiting for it on a connection that is gone.
                call.task?.cancel()
            }
        }
        if !unleased.isEmpty {
            self.logger.warning(
                "database calls found no connection in time; failing them", metadata: ["calls": "\(unleased.count)"])
            for call in unleased {
                // Failed first: the cancelled wait ends the call's task with the pool's error.
                let waited = call.leaseDeadline - call.started
                call.fail(
                    DatabaseError(
                        .noConnection,
                        waited < self.leaseLimit
                            ? "no database connection before the request's caller stopped waiting"
                            : "no database connection within \(self.leaseLimit)"))
                call.task?.cancel()
            }
        }
    }
}
