import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import PostgresNIO
import Synchronization
import TestSupport
import Testing
import _ConnectionPoolModule

/// ``Database``'s guard against statements that a closed connection swallows, against the real
/// PostgreSQL: a connection closed while it is leased, then a statement on it. No test times
/// anything (machines here are shared and noisy): a call that never ends hits the suite's time
/// limit, and the error's type tells the watchdog's failure from the pool's own (a minute).
@Suite("Database calls on a lost connection", .timeLimit(.minutes(1)))
struct DatabaseTests {
    final class Flag: Sendable {
        let value = Atomic(false)
    }

    /// A running ``Database`` for the test's body.
    func withDatabase(_ body: (Database) async throws -> Void) async throws {
        let database = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public").makeDatabase(
            logger: TestEnvironment.logger)
        try await whileRunning(database) {
            try await body(database)
        }
    }

    @Test("postgres-nio alone: a statement on a connection closed under its lease never ends")
    func unguardedStatementWaitsForever() async throws {
        try await self.withDatabase { database in
            let ended = Flag()
            // A task of its own: it never ends, so nothing may wait for it.
            Task {
                try? await database.client.withConnection { connection in
                    try await connection.close()
                    _ = try? await connection.query("SELECT 1", logger: TestEnvironment.logger)
                    ended.value.store(true, ordering: .relaxed)
                }
            }
            try await Task.sleep(for: .seconds(2))
            let didEnd = ended.value.load(ordering: .relaxed)
            #expect(!didEnd, "postgres-nio now fails such a statement: Database's guard may go")
        }
    }

    @Test("guarded: the same statement fails with connection_lost, and the next call works")
    func guardedStatementFails() async throws {
        try await self.withDatabase { database in
            await #expect {
                try await database.withConnection { connection in
                    try await connection.close()
                    return try await connection.query("SELECT 1", logger: TestEnvironment.logger).collect().count
                }
            } throws: { error in
                (error as? DatabaseError)?.code == .connectionLost
            }
            let rows = try await database.query("SELECT 1", logger: TestEnvironment.logger)
            for try await one in rows.decode(Int.self) { #expect(one == 1) }
        }
    }

    @Test("guarded: a body awaiting something else when its connection closes is failed and cancelled")
    func bodyAwaitingElsewhereIsCancelled() async throws {
        try await self.withDatabase { database in
            let cancelled = Flag()
            await #expect {
                try await database.withConnection { connection in
                    try await connection.close()
                    // A transaction body awaiting a broker's confirm, say: no statement pending.
                    do {
                        try await Task.sleep(for: .seconds(600))
                    } catch {
                        cancelled.value.store(true, ordering: .relaxed)
                        throw error
                    }
                }
            } throws: { error in
                (error as? DatabaseError)?.code == .connectionLost
            }
            // Until the forty-third session the call failed and its body slept on.
            let stopped = await TestHelpers.eventually(timeout: .seconds(5)) { cancelled.value.load(ordering: .relaxed) }
            #expect(stopped, "the body still awaits on a connection that is gone")
        }
    }

    @Test("guarded: a call for a request whose caller stops waiting waits for a connection until then, not the lease limit")
    func leaseWaitEndsAtTheRequestsDeadline() async throws {
        var configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public")
        configuration.maximumConnections = 1
        let database = configuration.makeDatabase(logger: TestEnvironment.logger)
        try await whileRunning(database) {
            let (held, release) = AsyncStream<Void>.makeStream()
            let (leased, hasLeased) = AsyncStream<Void>.makeStream()
            let holder = Task {
                try await database.withConnection { _ in
                    hasLeased.yield()
                    for await _ in held { break }
                }
            }
            for await _ in leased { break }
            let started = ContinuousClock.now
            await #expect {
                try await RequestDeadline.$current.withValue(.now + .milliseconds(300)) {
                    try await database.query("SELECT 1", logger: TestEnvironment.logger)
                }
            } throws: { error in
                (error as? DatabaseError)?.code == .noConnection
            }
            let waited = ContinuousClock.now - started
            // The lease limit is 15 s; the watchdog looks every 250 ms. The bound only tells the
            // two apart: on the loaded CI machine the whole suite's load once made it 5.3 s.
            #expect(waited < .seconds(10), "waited \(waited) for a connection past the request's deadline")
            release.yield()
            try await holder.value
            // Without a deadline, the freed connection serves the next call.
            let rows = try await database.query("SELECT 1", logger: TestEnvironment.logger)
            for try await one in rows.decode(Int.self) { #expect(one == 1) }
        }
    }

    @Test("guarded: a statement that runs long on an open connection is left alone")
    func slowStatementIsNotFailed() async throws {
        try await self.withDatabase { database in
            let rows = try await database.query("SELECT pg_sleep(1.2)::text", logger: TestEnvironment.logger)
            var count = 0
            for try await _ in rows { count += 1 }
            #expect(count == 1)
        }
    }

    /// Starts `body` as a guarded call in a task of its own, and cancels that task once `body`
    /// has begun; the task, to await.
    func cancelledOnceBegun<Result: Sendable>(
        _ database: Database, _ body: @escaping @Sendable () async throws -> Result
    ) async -> Task<Result, any Error> {
        let begun = AsyncStream<Void>.makeStream()
        let caller = Task {
            try await database.withConnection { _ in
                begun.continuation.yield()
                return try await body()
            }
        }
        for await _ in begun.stream { break }
        caller.cancel()
        return caller
    }

    @Test("guarded: the caller's cancellation reaches the call (a wait it does not end would meet the time limit)")
    func cancellationReachesTheCall() async throws {
        try await self.withDatabase { database in
            let caller = await self.cancelledOnceBegun(database) { try await Task.sleep(for: .seconds(600)) }
            await #expect(throws: CancellationError.self) { try await caller.value }
        }
    }

    @Test("guarded: a cancelled caller gets what the call made of it, as postgres-nio's caller would")
    func cancelledCallerGetsTheOutcome() async throws {
        try await self.withDatabase { database in
            let caller = await self.cancelledOnceBegun(database) {
                // Cancelled, the sleep ends early; the call still returns what it makes.
                try? await Task.sleep(for: .milliseconds(300))
                return 42
            }
            let value = try await caller.value
            #expect(value == 42)
        }
    }

    @Test("guarded: a call that finds no connection within the lease limit fails with no_connection")
    func unreachableServerFailsInTime() async throws {
        // Nothing listens on port 1: the pool keeps failing to connect, and would hold the
        // request until its own circuit breaker trips (a minute).
        let configuration = try DatabaseConfiguration(url: "postgres://postgres@127.0.0.1:1/none", schema: "public")
        let database = Database(
            client: configuration.makeClient(logger: TestEnvironment.logger), leaseLimit: .seconds(1),
            logger: TestEnvironment.logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await database.run() }
            defer { group.cancelAll() }
            await #expect {
                try await database.query("SELECT 1", logger: TestEnvironment.logger)
            } throws: { error in
                (error as? DatabaseError)?.code == .noConnection
            }
        }
    }
}

/// Which database failures count as `unavailable`.
@Suite("Database failures that mean unavailable")
struct DatabaseUnavailableTests {
    @Test("a lost connection, a watchdog's failure, a tripped pool and a server shutting down are; a bad statement is not")
    func classification() async throws {
        #expect(Database.isUnavailable(DatabaseError(.connectionLost, "gone")))
        #expect(Database.isUnavailable(DatabaseError(.noConnection, "none in time")))
        // Only a call that had a connection may have committed.
        #expect(Database.mayHaveCommitted(DatabaseError(.connectionLost, "gone")))
        #expect(!Database.mayHaveCommitted(DatabaseError(.noConnection, "none in time")))
        #expect(!Database.isUnavailable(DatabaseError(.migrationFailed, "bad")))
        #expect(!Database.isUnavailable(CancellationError()))
        #expect(Database.isUnavailable(ConnectionPoolError.connectionCreationCircuitBreakerTripped))
        #expect(Database.isUnavailable(ConnectionPoolError.poolShutdown))
        #expect(!Database.isUnavailable(ConnectionPoolError.requestCancelled))
        let database = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public").makeDatabase(
            logger: TestEnvironment.logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await database.run() }
            defer { group.cancelAll() }
            do {
                try await database.query("SELECT * FROM no_such_table_at_all", logger: TestEnvironment.logger)
                Issue.record("the query did not fail")
            } catch {
                #expect(!Database.isUnavailable(error), "\(String(reflecting: error))")
            }
            do {
                _ = try await database.withConnection { connection in
                    try await connection.close()
                    return try await connection.query("SELECT 1", logger: TestEnvironment.logger).collect().count
                }
                Issue.record("the query did not fail")
            } catch {
                #expect(Database.isUnavailable(error), "\(String(reflecting: error))")
            }
        }
    }

    /// The error of a transaction that waits at most 100 ms for an advisory lock another session
    /// holds (nil if it got it).
    func lockWaitError(_ database: Database) async throws -> (any Error)? {
        let logger = TestEnvironment.logger
        let key = Int64.random(in: 1...Int64.max)
        return try await database.withConnection { holder in
            try await holder.query("SELECT pg_advisory_lock(\(key))", logger: logger)
            var failure: (any Error)?
            do {
                try await database.transaction(logger: logger) { connection in
                    try await connection.query("SET LOCAL lock_timeout = 100", logger: logger)
                    // Read to the end: postgres-nio hands the rows over at the row description,
                    // and the lock's error comes after it.
                    _ = try await connection.query("SELECT pg_advisory_xact_lock(\(key))", logger: logger).collect()
                }
            } catch {
                failure = error
            }
            try await holder.query("SELECT pg_advisory_unlock(\(key))", logger: logger)
            return failure
        }
    }

    @Test("a lock not granted within lock_timeout (55P03) and a session ended idle in a transaction (25P03) are")
    func lockTimeoutAndIdleSession() async throws {
        var configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public")
        configuration.idleInTransactionTimeout = .milliseconds(200)
        let database = configuration.makeDatabase(logger: TestEnvironment.logger)
        let logger = TestEnvironment.logger
        try await whileRunning(database) {
            let error = try await self.lockWaitError(database)
            #expect(error.map(Database.isUnavailable) == true, "\(String(reflecting: error))")
            // A transaction that waits longer than the timeout between two statements.
            do {
                try await database.transaction(logger: logger) { connection in
                    try await connection.query("SELECT 1", logger: logger)
                    try await Task.sleep(for: .seconds(1))
                    try await connection.query("SELECT 1", logger: logger)
                }
                Issue.record("the idle transaction went on")
            } catch {
                #expect(Database.isUnavailable(error), "\(String(reflecting: error))")
            }
        }
    }

    @Test("a lock not granted within lock_timeout (55P03) is told from other failures")
    func lockTimeoutIsRecognized() async throws {
        let configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public")
        let database = configuration.makeDatabase(logger: TestEnvironment.logger)
        let logger = TestEnvironment.logger
        try await whileRunning(database) {
            let error = try await self.lockWaitError(database)
            #expect(error.map(Database.isLockTimeout) == true, "\(String(reflecting: error))")
            do {
                try await database.query("SELECT 1/0", logger: logger)
                Issue.record("1/0 answered")
            } catch {
                #expect(!Database.isLockTimeout(error))
            }
        }
    }

    @Test("a deadlock PostgreSQL broke (40P01) is retryable, although the database is not away")
    func deadlockIsRetryable() async throws {
        let configuration = try DatabaseConfiguration(url: TestEnvironment.databaseURL, schema: "public")
        let database = configuration.makeDatabase(logger: TestEnvironment.logger)
        let logger = TestEnvironment.logger
        let (a, b) = (Int64.random(in: 1...Int64.max), Int64.random(in: 1...Int64.max))
        let holding = HoldingCount()
        @Sendable func lock(_ first: Int64, then second: Int64) async -> (any Error)? {
            do {
                try await database.transaction(logger: logger) { connection in
                    _ = try await connection.query("SELECT pg_advisory_xact_lock(\(first))", logger: logger).collect()
                    // Both hold their first lock before either asks for its second.
                    holding.count.withLock { $0 += 1 }
                    let deadline = ContinuousClock.now + .seconds(10)
                    while holding.count.withLock({ $0 }) < 2, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(10))
                    }
                    _ = try await connection.query("SELECT pg_advisory_xact_lock(\(second))", logger: logger).collect()
                }
                return nil
            } catch {
                return error
            }
        }
        try await whileRunning(database) {
            async let one = lock(a, then: b)
            async let other = lock(b, then: a)
            let errors = await [one, other].compactMap { $0 }
            #expect(errors.count == 1, "\(errors)")
            for error in errors {
                #expect(Database.isRetryable(error), "\(String(reflecting: error))")
                #expect(!Database.isUnavailable(error))
            }
        }
    }
}

/// How many of the deadlock test's transactions hold their first lock.
private final class HoldingCount: Sendable {
    let count = Mutex(0)
}
