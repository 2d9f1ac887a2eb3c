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
/// connection's confirm window, and marks them published once the broker confirmed every one.
///
/// A crash between commit and publish loses nothing: the rows stay unpublished and the next run
/// (of this or any replica) publishes them. A crash between the broker's confirm and the mark
/// publishes them again, which consumers absorb by deduplicating on the message id (the event
/// id). Replicas take turns through a transaction-scoped advisory lock, so one relay publishes at
/// a time and order is kept.
public struct OutboxRelay: Service {
    private let client: PostgresClient
    private let amqp: AMQPConnection
    private let exchange: String
    private let signal: OutboxSignal
    private let lockKey: Int64
    private let batchSize: Int
    private let pollInterval: Duration
    private let retention: Duration
    private let logger: Logger

    public init(
        client: PostgresClient, amqp: AMQPConnection, exchange: String, signal: OutboxSignal, schema: String,
        batchSize: Int = 500, pollInterval: Duration = .milliseconds(500), retention: Duration = .seconds(86_400),
        logger: Logger
    ) {
        self.client = client
        self.amqp = amqp
        self.exchange = exchange
        self.signal = signal
        self.lockKey = DatabaseMigrator.lockKey(for: "outbox.\(schema)")
        self.batchSize = batchSize
        self.pollInterval = pollInterval
        self.retention = retention
        self.logger = logger
    }

    public func run() async throws {
        let signal = self.signal
        let interval = self.pollInterval
        await withDiscardingTaskGroup { group in
            group.addTask {
                // The poll: rows committed by other replicas, or left by a crash, or whose wake was
                // coalesced away.
                while (try? await Task.sleep(for: interval)) != nil { signal.wake() }
            }
            await cancelWhenGracefulShutdown {
                var lastPrune = ContinuousClock.now - .seconds(3600)
                var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
                for await _ in signal.wakeups {
                    do {
                        while try await self.publishBatch() == self.batchSize {}
                        backoff.reset()
                        if ContinuousClock.now - lastPrune > .seconds(600) {
                            lastPrune = ContinuousClock.now
                            try await self.prune()
                        }
                    } catch {
                        guard !Task.isCancelled else { return }
                        self.logger.warning("outbox relay failed, retrying", metadata: [LogKey.error: "\(error)"])
                        try? await Task.sleep(for: backoff.next())
                        signal.wake()
                    }
                }
            }
            group.cancelAll()
        }
    }

    /// Publishes up to `batchSize` rows; returns how many (0 when another replica holds the turn).
    func publishBatch() async throws -> Int {
        try await self.client.withTransaction(logger: self.logger) { connection in
            var positions: [Int64] = []
            var messages: [AMQPMessage] = []
            for try await row in try await connection.execute(
                OutboxStatements.TakeTurn(key: self.lockKey, limit: Int64(self.batchSize)), logger: self.logger)
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
            _ = try await connection.execute(OutboxStatements.MarkPublished(positions: positions), logger: self.logger)
            Counter(label: "outbox_published_total").increment(by: messages.count)
            return messages.count
        }
    }

    private func prune() async throws {
        let seconds = Double(self.retention.components.seconds)
        try await self.client.query(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => \(seconds))", logger: self.logger)
    }
}
