import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import Metrics
import PostgresNIO
import ServiceLifecycle
import Synchronization
import ThreadedIO

/// Publishes the outbox's rows to an exchange in `position` order, in batches that share the
/// connection's confirm window, and deletes them once the broker confirmed every one.
///
/// A crash between commit and publish loses nothing: the rows stay and the next run (of this or
/// any replica) publishes them. A crash between the broker's confirm and the delete publishes
/// them again, which consumers absorb by deduplicating on the message id (the event id).
///
/// One relay across the replicas publishes at a time, so order is kept: the one that holds the
/// turn, a session advisory lock on a connection it keeps (every relay keeps one connection of
/// its pool, with the turn or waiting for it). While it holds the turn, a batch is
/// one statement (delete the previous batch's rows, read the next) and the publish. A relay
/// without the turn tries to take it at each wake, and in the same statement wakes the holder
/// through `NOTIFY` (the holder listens), so rows committed on any replica go out at once. If the
/// holder's connection or process dies, PostgreSQL releases the lock and the next relay to wake
/// (each polls) takes over. If it stops without dying (a frozen process or virtual machine, a
/// network that drops its packets), its session ends once it has been idle for `turnIdleLimit`
/// (30 s by default, and at least three polls), which PostgreSQL bounds with
/// `idle_session_timeout` on the holder's session: a working holder runs a statement at every
/// poll. Until the sixtieth session nothing bounded it, and a frozen holder stopped every
/// replica's events for as long as its session lived (a review). A holder whose batch waits for
/// the broker's confirms that long loses the turn too; the next holder publishes the batch again
/// (copies, which consumers drop by event id).
///
/// A relay whose broker connection is down does not take the turn, and one that holds it gives
/// it back once its broker has been away `brokerAwayLimit` (10 s by default) while a batch waits
/// for its confirms: the replicas that reach the broker publish meanwhile. Until the fiftieth
/// session a replica cut off from the broker alone (its node's network, rotated credentials)
/// held the turn, and every replica's events waited in the outbox for as long (a review). What
/// it had sent may still reach the broker after the next holder's batches: copies, which the
/// consumers drop by their event id.
///
/// Every batch reads from the oldest position, so it walks past the index entries of the rows
/// deleted since the last vacuum. The relay vacuums the table itself every `vacuumEvery` rows
/// it published, which keeps that walk short whatever the autovacuum settings.
public struct OutboxRelay: Service {
    private let database: Database
    private let amqp: AMQPConnection
    private let exchange: String
    private let signal: OutboxSignal
    private let lockKey: Int64
    private let channel: String
    private let batchSize: Int
    private let pollInterval: Duration
    private let vacuumEvery: Int
    private let shutdownGrace: Duration
    private let brokerAwayLimit: Duration
    /// `turnIdleLimit` in milliseconds, as `idle_session_timeout` takes it.
    private let turnIdleMilliseconds: Int64
    private let logger: Logger

    public init(
        client: Database, amqp: AMQPConnection, exchange: String, signal: OutboxSignal, schema: String,
        batchSize: Int = 500, pollInterval: Duration = .milliseconds(500), vacuumEvery: Int = 5_000,
        shutdownGrace: Duration = .seconds(5), brokerAwayLimit: Duration = .seconds(10),
        turnIdleLimit: Duration = .seconds(30), logger: Logger
    ) {
        self.database = client
        self.amqp = amqp
        self.exchange = exchange
        self.signal = signal
        self.lockKey = DatabaseMigrator.lockKey(for: "outbox.\(schema)")
        self.channel = "outbox.\(schema)"
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.vacuumEvery = vacuumEvery
        self.shutdownGrace = shutdownGrace
        self.brokerAwayLimit = brokerAwayLimit
        self.turnIdleMilliseconds = DatabaseConfiguration.milliseconds(max(turnIdleLimit, pollInterval * 3))
        self.logger = logger
    }

    public func run() async throws {
        let signal = self.signal
        let interval = self.pollInterval
        // The vacuum runs beside the relay, not in its way: publishing waited for it before (50 ms
        // every 5,000 rows on the floor benchmark, a stall for the messages of that moment).
        let (vacuums, vacuumDue) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withDiscardingTaskGroup { group in
            group.addTask {
                // The poll: rows left by a crash, a holder that died, or a wake coalesced away.
                while (try? await LoopTimer.sleep(for: interval)) != nil { signal.wake() }
            }
            group.addTask {
                for await _ in vacuums { await self.vacuum() }
            }
            await cancelWhenGracefulShutdown {
                var wakeups = signal.wakeups.makeAsyncIterator()
                var relay = RelayState(vacuumDue: vacuumDue)
                while !Task.isCancelled {
                    do {
                        // The relay holds its connection for its life, so the connection is the
                        // pool's own (its statements are guarded one by one; ``Database``).
                        try await self.database.client.withConnection { connection in
                            try await self.serve(on: connection, wakeups: &wakeups, relay: &relay)
                        }
                        return
                    } catch {
                        guard !Task.isCancelled else { return }
                        self.logger.warning("outbox relay failed, retrying", metadata: [LogKey.error: "\(LoggedError(error))"])
                        try? await Task.sleep(for: relay.backoff.next())
                    }
                }
            }
            vacuumDue.finish()
            group.cancelAll()
        }
    }

    /// What the relay carries from one connection to the next.
    private struct RelayState {
        var vacuumDue: AsyncStream<Void>.Continuation
        var sinceVacuum = 0
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
        let inFlight = BatchInFlight()
    }

    /// The batch being published, if any, and when it started: what the broker watch cancels
    /// (``watchTheBroker(cancellingBatchesIn:)``).
    private final class BatchInFlight: Sendable {
        let batch = Mutex<(task: Task<[Int64], any Error>, started: ContinuousClock.Instant)?>(nil)
    }

    /// Relays on `connection` until shutdown (returns) or a failure (throws): waits for the turn,
    /// then publishes at every wake while it holds it, and hands it back on the way out.
    nonisolated(nonsending) private func serve(
        on connection: PostgresConnection, wakeups: inout AsyncStream<Void>.Iterator, relay: inout RelayState
    ) async throws {
        while true {
            guard await wakeups.next(isolation: #isolation) != nil else { return }
            guard self.amqp.isPublishingConnected else { continue }
            if try await self.takeTurnOrNudge(on: connection) { break }
        }
        self.logger.debug("outbox relay holds the turn")
        var published: [Int64] = []
        do {
            let signal = self.signal
            try await connection.listen(on: self.channel) { notifications in
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask {
                        for try await _ in notifications { signal.wake() }
                    }
                    let inFlight = relay.inFlight
                    group.addTask { await self.watchTheBroker(cancellingBatchesIn: inFlight) }
                    // Rows may have been committed before the listen began: publish them first.
                    repeat {
                        try await self.publishAll(on: connection, published: &published, relay: &relay)
                    } while await wakeups.next(isolation: #isolation) != nil
                    // Stopping: a last batch for what the service committed since the last wake
                    // (its commands finished before the relay was stopped; ``ServiceStartup``).
                    try await self.publishAll(on: connection, published: &published, relay: &relay)
                    group.cancelAll()
                }
            }
        } catch {
            await self.handBack(connection, published: published)
            throw error
        }
        await self.handBack(connection, published: published)
    }

    /// Whether this connection now holds the turn. It runs in a task of its own, as
    /// ``handBack(_:published:)`` does: cancelled by a shutdown after the server ran it, the read
    /// of its row would throw, and the connection would go back to the pool holding the turn and
    /// its idle timeout, with nothing to hand them back.
    private func takeTurnOrNudge(on connection: PostgresConnection) async throws -> Bool {
        let (key, channel, logger, database) = (self.lockKey, self.channel, self.logger, self.database)
        let idleLimit = self.turnIdleMilliseconds
        return try await Task {
            try await database.run(on: connection) {
                var holdsTurn = false
                for try await mine in try await connection.execute(
                    OutboxStatements.TakeTurnOrNudge(key: key, channel: channel, idleLimit: idleLimit), logger: logger)
                {
                    holdsTurn = mine
                }
                return holdsTurn
            }
        }.value
    }

    /// Publishes batches until the table holds no more rows than the last batch's, which stay
    /// (as `published`) until the next statement deletes them.
    nonisolated(nonsending) private func publishAll(
        on connection: PostgresConnection, published: inout [Int64], relay: inout RelayState
    ) async throws {
        while true {
            // A batch runs to its end even when shutdown cancels the relay: cut short after the
            // broker took it, its rows would stay and go out a second time from the next holder.
            // But not for longer than `shutdownGrace`: a broker that is away would hold the
            // shutdown, and the rows then stay for the next holder.
            let deleting = published
            let publishing = Task { try await self.publishBatch(on: connection, deleting: deleting) }
            relay.inFlight.batch.withLock { $0 = (publishing, .now) }
            defer { relay.inFlight.batch.withLock { $0 = nil } }
            let grace = self.shutdownGrace
            let batch = try await withTaskCancellationHandler {
                try await publishing.value
            } onCancel: {
                Task {
                    try? await Task.sleep(for: grace)
                    publishing.cancel()
                }
            }
            published = batch
            relay.sinceVacuum += batch.count
            if relay.sinceVacuum >= self.vacuumEvery {
                relay.sinceVacuum = 0
                relay.vacuumDue.yield()
            }
            // At shutdown the batch in flight ends, and the rest waits for the next holder.
            if batch.count < self.batchSize || Task.isCancelled { break }
        }
        relay.backoff.reset()
    }

    /// Cancels the batch in flight (its rows stay, and the relay gives the turn back) once the
    /// broker connection has been down for ``brokerAwayLimit`` in a row while it waited; runs
    /// while the relay holds the turn. The time counts from the batch's start at the earliest,
    /// as it did when each batch had a watch of its own (until the fifty-first session; counted
    /// across batches, a batch that started in a moment of connection between two looks was
    /// cancelled at once, a review).
    private func watchTheBroker(cancellingBatchesIn inFlight: BatchInFlight) async {
        var awaySince: ContinuousClock.Instant?
        while (try? await LoopTimer.sleep(for: .milliseconds(250))) != nil {
            guard !self.amqp.isPublishingConnected else {
                awaySince = nil
                continue
            }
            let since = awaySince ?? .now
            awaySince = since
            let limit = self.brokerAwayLimit
            let cancelled = inFlight.batch.withLock { batch -> Bool in
                guard let batch, !batch.task.isCancelled, ContinuousClock.now - max(since, batch.started) >= limit
                else { return false }
                batch.task.cancel()
                return true
            }
            if cancelled { self.logger.warning("the broker stays away; the outbox relay gives the turn back") }
        }
    }

    /// Deletes the rows of the previous batch, reads the oldest others and publishes them;
    /// returns their positions once the broker confirmed them all.
    private func publishBatch(on connection: PostgresConnection, deleting published: [Int64]) async throws -> [Int64] {
        let (exchange, limit, logger) = (self.exchange, Int64(self.batchSize), self.logger)
        let (positions, messages) = try await self.database.run(on: connection) {
            var positions: [Int64] = []
            var messages: [AMQPMessage] = []
            for try await row in try await connection.execute(
                OutboxStatements.DeletePublishedAndReadOldest(published: published, limit: limit), logger: logger)
            {
                let (position, eventID, type, body) = try row.decode((Int64, UUID, String, String).self)
                positions.append(position)
                messages.append(
                    AMQPMessage(
                        exchange: exchange, routingKey: type, body: Data(body.utf8),
                        properties: AMQPProperties(contentType: "application/json", messageID: eventID.lowercasedText, type: type)
                    ))
            }
            return (positions, messages)
        }
        guard !messages.isEmpty else { return [] }
        try await self.amqp.publish(messages)
        Counter(label: "outbox_published_total").increment(by: messages.count)
        return positions
    }

    /// Deletes the last batch's rows and releases the turn. On a broken connection both are moot:
    /// the server released the lock when the session ended, and the rows are published again.
    /// If the connection lives but the release fails, it is closed, which releases the lock too.
    /// It runs in a task of its own: at shutdown the relay's task is cancelled, and postgres-nio
    /// fails a cancelled task's statements.
    private func handBack(_ connection: PostgresConnection, published: [Int64]) async {
        // Closed already (by ``Database`` after a failure that may have spoilt a prepared
        // statement, or by the server): the session's end released the turn.
        guard !connection.isClosed else { return }
        let (logger, key, database) = (self.logger, self.lockKey, self.database)
        await Task {
            do {
                try await database.run(on: connection) {
                    if !published.isEmpty {
                        // Read to the end: the row sequence is handed over before the statement has run, and
                        // its error comes after (postgres-nio's command-tag overload traps on this one).
                        for try await _ in try await connection.execute(
                            OutboxStatements.DeletePublished(positions: published), logger: logger)
                        {}
                    }
                    for try await _ in try await connection.execute(OutboxStatements.ReleaseTurn(key: key), logger: logger) {}
                }
            } catch {
                logger.warning(
                    "outbox relay could not hand its turn back; closing its connection",
                    metadata: [LogKey.error: "\(LoggedError(error))"])
                try? await connection.close()
            }
        }.value
    }

    /// Removes the dead rows and their index entries (`SKIP_LOCKED`: not while another vacuum,
    /// such as autovacuum's, is at it). `TRUNCATE false`: the table keeps its empty pages at the
    /// end for the next rows, instead of an exclusive lock to cut them off, which made every
    /// command writing an event and the relay wait. A failure only delays it to the next
    /// `vacuumEvery` rows: publishing goes on.
    private func vacuum() async {
        do {
            try await self.database.query("VACUUM (SKIP_LOCKED, TRUNCATE false) outbox", logger: self.logger)
        } catch  where !Task.isCancelled {
            self.logger.warning("outbox vacuum failed", metadata: [LogKey.error: "\(LoggedError(error))"])
        } catch {
            // Shutting down.
        }
    }
}
