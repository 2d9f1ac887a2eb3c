import MessengerPostgres
import MessengerServiceKit

/// The `delivery` schema's migrations, oldest first. Never edit a shipped one; append.
enum DeliveryMigrations {
    static let all: [Migration] = [
        .inbox, eventLog, acknowledgements, eventsAreTheInbox, deliveriesUpdatedInPlace, seenMarks,
    ]

    /// The per-user event log: each domain event once (`events`), and per recipient its seq and
    /// delivery status (`deliveries`); `user_sequences` holds each user's last seq and how far
    /// the user acknowledged.
    static let eventLog = Migration(
        version: 2, name: "event_log",
        statements: [
            """
            CREATE TABLE events (
                event_id uuid PRIMARY KEY,
                name text NOT NULL,
                occurred_at timestamptz NOT NULL,
                data text NOT NULL,
                thread_id uuid,
                message_id uuid,
                message_seq bigint,
                sender_id uuid,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX events_message ON events (message_id) WHERE message_id IS NOT NULL",
            "CREATE INDEX events_created_at ON events (created_at)",
            """
            CREATE TABLE user_sequences (
                user_id uuid PRIMARY KEY,
                last_seq bigint NOT NULL DEFAULT 0,
                acked_seq bigint NOT NULL DEFAULT 0
            )
            """,
            """
            CREATE TABLE deliveries (
                user_id uuid NOT NULL,
                seq bigint NOT NULL,
                event_id uuid NOT NULL REFERENCES events (event_id) ON DELETE CASCADE,
                status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'SEEN')),
                attempts integer NOT NULL DEFAULT 1,
                first_attempt_at timestamptz NOT NULL DEFAULT now(),
                last_attempt_at timestamptz NOT NULL DEFAULT now(),
                delivered_at timestamptz,
                seen_at timestamptz,
                expires_at timestamptz NOT NULL,
                PRIMARY KEY (user_id, seq),
                UNIQUE (user_id, event_id)
            )
            """,
            "CREATE INDEX deliveries_event ON deliveries (event_id)",
            "CREATE INDEX deliveries_expires_at ON deliveries (expires_at)",
        ])

    /// How far each user acknowledged moves to a table of its own, so that an `ack_events` never
    /// waits on (or holds) the sequence row that recording new events locks.
    static let acknowledgements = Migration(
        version: 3, name: "user_acks",
        statements: [
            "CREATE TABLE user_acks (user_id uuid PRIMARY KEY, acked_seq bigint NOT NULL)",
            "INSERT INTO user_acks (user_id, acked_seq) SELECT user_id, acked_seq FROM user_sequences WHERE acked_seq > 0",
            "ALTER TABLE user_sequences DROP COLUMN acked_seq",
        ])

    /// The events table is the event consumer's inbox: an event's id is its primary key, and an
    /// event stays at least as long as its inbox id did (both for the retention), so recording
    /// an event no longer also claims its id in `processed_messages`.
    static let eventsAreTheInbox = Migration(
        version: 4, name: "events_are_the_inbox",
        statements: ["DROP TABLE processed_messages"])

    /// A delivery is updated soon after it is written (acknowledged, seen, tried again), none
    /// of them in an indexed column: with room left on its page the new version stays there,
    /// and none of the table's four indexes gets an entry for it (a heap-only update). Full
    /// pages made a quarter of the updates write four index entries each. Pages written from
    /// now on keep 30 % free; the table is not rewritten.
    static let deliveriesUpdatedInPlace = Migration(
        version: 5, name: "deliveries_fillfactor",
        statements: ["ALTER TABLE deliveries SET (fillfactor = 70)"])

    /// `mark_seen` looks only at the messages of the thread between the last message the user
    /// marked seen there and the new one (`seen_marks`, found through `events_thread_messages`),
    /// not at every delivery the user has.
    static let seenMarks = Migration(
        version: 6, name: "seen_marks",
        statements: [
            "CREATE INDEX events_thread_messages ON events (thread_id, message_seq) WHERE name = 'MESSAGE_CREATED'",
            """
            CREATE TABLE seen_marks (
                user_id uuid NOT NULL,
                thread_id uuid NOT NULL,
                message_seq bigint NOT NULL,
                PRIMARY KEY (user_id, thread_id)
            )
            """,
        ])
}
