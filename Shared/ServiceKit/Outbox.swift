import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import PostgresNIO

extension Migration {
    /// The transactional outbox: events written in the same transaction as the state change they
    /// describe, published afterwards by ``OutboxRelay`` in `position` order. (Its first form
    /// marked published rows and kept them a day; ``outboxDeletesPublished(version:)`` follows.)
    public static func outbox(version: Int) -> Migration {
        Migration(
            version: version, name: "outbox",
            statements: [
                """
                CREATE TABLE outbox (
                    position bigserial PRIMARY KEY,
                    event_id uuid NOT NULL UNIQUE,
                    type text NOT NULL,
                    body text NOT NULL,
                    created_at timestamptz NOT NULL DEFAULT now(),
                    published_at timestamptz
                )
                """,
                "CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL",
                "CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL",
            ])
    }

    /// The relay deletes the rows it published instead of marking them: the table holds only the
    /// rows still to publish (and the dead ones until the next vacuum), so the relay's scan from
    /// the oldest position stays short. Marked rows had left the partial index of unpublished rows
    /// full of dead entries that every relay turn walked through, more of them every hour.
    public static func outboxDeletesPublished(version: Int) -> Migration {
        Migration(
            version: version, name: "outbox_deletes_published",
            statements: [
                "DELETE FROM outbox WHERE published_at IS NOT NULL",
                "DROP INDEX outbox_unpublished",
                "DROP INDEX outbox_published_at",
                "ALTER TABLE outbox DROP COLUMN published_at",
            ])
    }
}

/// Writes domain events into the outbox, inside the caller's transaction.
public enum Outbox {
    /// Appends `envelope`; it is published (routing key = its type) once the transaction commits
    /// and the relay runs. Call ``OutboxSignal/wake()`` after the commit for a prompt publish.
    public static func append<Payload: Encodable & Sendable>(
        _ envelope: Envelope<Payload>, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let body = String(decoding: try envelope.encoded(), as: UTF8.self)
        try await connection.query(
            "INSERT INTO outbox (event_id, type, body) VALUES (\(envelope.id), \(envelope.type.rawValue), \(body))",
            logger: logger)
    }
}

extension Outbox {
    /// One event already encoded: its id, its type, and its envelope's JSON.
    public struct EncodedEvent: Sendable {
        public var id: UUID
        public var type: MessageType
        public var body: Data

        public init(id: UUID, type: MessageType, body: Data) {
            self.id = id
            self.type = type
            self.body = body
        }
    }

    /// The statement that appends events given as three arrays (ids, types, bodies) bound at
    /// `$first`, `$first+1` and `$first+2`, in their order; the tail of a service's own statement
    /// that writes its rows and their events at once (messaging's `MessageStatements.Write`).
    public static func appendSQL(parametersFrom first: Int) -> String {
        """
        INSERT INTO outbox (event_id, type, body)
        SELECT id, type, body FROM unnest($\(first)::uuid[], $\(first + 1)::text[], $\(first + 2)::text[])
            WITH ORDINALITY AS e(id, type, body, n)
        ORDER BY n
        """
    }
}

/// Wakes the outbox relay after a commit; the relay also polls, so a missed wake only delays.
/// One signal per relay.
public final class OutboxSignal: Sendable {
    let wakeups: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    public init() {
        (self.wakeups, self.continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func wake() { self.continuation.yield() }

    func finish() { self.continuation.finish() }
}
