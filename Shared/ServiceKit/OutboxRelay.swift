import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import Metrics
import PostgresNIO
import ServiceLifecycle
import ThreadedIO

/// Publishes the outbox's rows to an exchange in `position` order, in batches that share the
/// connection's confirm window, and deletes them once the broker confirmed every one.
///
/// A crash between commit and publish loses nothing: the rows stay and the next run (of this or
/// any replica) publishes them. A crash between the broker's confirm and the delete publishes
/// them again, which consumers absorb by deduplicating on the message id (the event id). Replicas
/// take turns through a transaction-scoped advisory lock, so one relay publishes at a time and
/// order is kept; a turn reads the rows only after it holds the lock, so it sees the deletes of
/// the turn before it.
///
/// Every turn reads from the oldest position, so it walks past the index entries of the rows
/// deleted since the last vacuum. The relay vacuums the table itself every `vacuumEvery` rows
/// it published, which keeps that walk short whatever the autovacuum settings.
public struct OutboxRelay: Service {
    private let client: PostgresClient
    private let amqp: AMQPConnection
    private let exchange: String
    private let signal: OutboxSignal
    private let lockKey: Int64
    private let batchSize: Int
    private let pollInterval: Duration
    private let vacuumEvery: Int
    private let logger: Logger

    public init(
        client: PostgresClient, amqp: AMQPConnection, exchange: String, signal: OutboxSignal, schema: String,
        batchSize: Int = 500, pollInterval: Duration = .milliseconds(500), vacuumEvery: Int = 5_000, logger: Logger
    ) {
        self.client = client
        self.amqp = amqp
        self.exchange = exchange
        self.signal = signal
        self.lockKey = DatabaseMigrator.lockKey(for: "outbox.\(schema)")
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.vacuumEvery = vacuumEvery
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
                // The poll: rows committed by other replicas, or left by a crash, or whose wake was
                // coalesced away.
                while (try? await Task.sleep(for: interval)) != nil { signal.wake() }
            }
            group.addTask {
                for await _ in vacuums { await self.vacuum() }
            }
            await cancelWhenGracefulShutdown {
                var sinceVacuum = 0
                var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
                for await _ in signal.wakeups {
                    do {
                        var published = self.batchSize
                        while published == self.batchSize {
                            published = try await self.publishBatch()
                            sinceVacuum += published
                        }
                        backoff.reset()
                        if sinceVacuum >= self.vacuumEvery {
                            sinceVacuum = 0
                            vacuumDue.yield()
                        }
                    } catch {
                        guard !Task.isCancelled else { return }
                        self.logger.warning("outbox relay failed, retrying", metadata: [LogKey.error: "\(error)"])
                        try? await Task.sleep(for: backoff.next())
                        signal.wake()
                    }
                }
            }
            vacuumDue.finish()
            group.cancelAll()
        }
    }

    /// Publishes up to `batchSize` rows; returns how many (0 when another replica holds the turn).
    func publishBatch() async throws -> Int {
        try await self.client.withTransaction(logger: self.logger) { connection in
            var holdsTurn = false
            for try await mine in try await connection.execute(
                OutboxStatements.TakeTurn(key: self.lockKey), logger: self.logger)
            {
                holdsTurn = mine
            }
            guard holdsTurn else { return 0 }
            var positions: [Int64] = []
            var messages: [AMQPMessage] = []
            for try await row in try await connection.execute(
                OutboxStatements.OldestRows(limit: Int64(self.batchSize)), logger: self.logger)
            {
                let (position, eventID, type, body) = try row.decode((Int64, UUID, String, String).self)
                positions.append(position)
                messages.append(
                    AMQPMessage(
                        exchange: self.exchange, routingKey: type, body: Data(body.utf8),
                        properties: AMQPProperties(
                            contentType: "application/json", messageID: eventID.lowercasedText, type: type)))
            }
            guard !messages.isEmpty else { return 0 }
            try await self.amqp.publish(messages)
            _ = try await connection.execute(OutboxStatements.DeletePublished(positions: positions), logger: self.logger)
            Counter(label: "outbox_published_total").increment(by: messages.count)
            return messages.count
        }
    }

    /// Removes the dead rows and their index entries (`SKIP_LOCKED`: not while another vacuum,
    /// such as autovacuum's, is at it). `TRUNCATE false`: the table keeps its empty pages at the
    /// end for the next rows, instead of an exclusive lock to cut them off, which made every
    /// command writing an event and the relay wait. A failure only delays it to the next
    /// `vacuumEvery` rows: publishing goes on.
    private func vacuum() async {
        do {
            try await self.client.query("VACUUM (SKIP_LOCKED, TRUNCATE false) outbox", logger: self.logger)
        } catch  where !Task.isCancelled {
            self.logger.warning("outbox vacuum failed", metadata: [LogKey.error: "\(error)"])
        } catch {
            // Shutting down.
        }
    }
}
