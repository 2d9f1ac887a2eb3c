import Foundation
import MessengerPostgres
import PostgresNIO

/// The statements the event log runs for every event and every acknowledgement, prepared once
/// per connection.
enum EventLogStatements {
    /// A batch of events, in one statement: stores each event unless it is stored already (its
    /// id is the primary key, so the events table is the consumer's inbox: an event stored
    /// before is a redelivery), and for the events stored now raises each recipient's last seq
    /// by its number of new events (the sequence rows are created or updated in user-id order,
    /// and stay locked to the end of the transaction) and stores one delivery per recipient
    /// with the seqs in the events' order.
    ///
    /// Events come as columns ("" and -1 stand for no message id, seq or sender), recipients as
    /// (event, user) pairs. Returns a row (event, NULL, NULL) for each event stored now and a
    /// row (event, user, seq) for each delivery.
    ///
    /// A delivery's `first_attempt_at` is when its row is written (`clock_timestamp()`), after
    /// the statement waited for the sequence rows' locks: the statement's start (`now()`, the
    /// column's default until the fiftieth session) could be seconds before the event was
    /// stored and pushed, and a gateway's look for pushes a socket missed, which asks for the
    /// events stored since the socket registered (``EventLog/events(user:afterSeq:limit:includeAcknowledged:acknowledgedSince:acknowledgedAfter:)``),
    /// passed over such an event once another device had acknowledged it.
    struct Record: PreparedRows {
        static let name = "delivery.record"
        static let sql = """
            WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::uuid[], $6::text[],
                                     $7::bigint[], $8::text[])
                    WITH ORDINALITY AS e(id, name, occurred_at, data, thread_id, message_id, message_seq, sender_id, ord)
            ), claimed AS (
                INSERT INTO events (event_id, name, occurred_at, data, thread_id, message_id, message_seq, sender_id)
                SELECT id, name, occurred_at, data, thread_id, NULLIF(message_id, '')::uuid, NULLIF(message_seq, -1),
                       NULLIF(sender_id, '')::uuid
                FROM input
                ON CONFLICT (event_id) DO NOTHING RETURNING event_id AS id
            ), fresh AS (
                SELECT input.* FROM input JOIN claimed USING (id)
            ), recipients AS (
                SELECT DISTINCT fresh.id, fresh.ord, r.user_id
                FROM fresh JOIN unnest($9::uuid[], $10::uuid[]) AS r(id, user_id) USING (id)
            ), counts AS (
                SELECT user_id, count(*) AS n FROM recipients GROUP BY user_id
            ), raised AS (
                INSERT INTO user_sequences (user_id, last_seq) SELECT user_id, n FROM counts ORDER BY user_id
                ON CONFLICT (user_id) DO UPDATE SET last_seq = user_sequences.last_seq + EXCLUDED.last_seq
                RETURNING user_id, last_seq
            ), numbered AS (
                SELECT r.id, r.user_id, raised.last_seq - counts.n + row_number() OVER (PARTITION BY r.user_id ORDER BY r.ord) AS seq
                FROM recipients r JOIN counts USING (user_id) JOIN raised USING (user_id)
            ), delivered AS (
                INSERT INTO deliveries (user_id, seq, event_id, expires_at, first_attempt_at)
                SELECT user_id, seq, id, $11, clock_timestamp() FROM numbered
            )
            SELECT id, NULL::uuid AS user_id, NULL::bigint AS seq FROM claimed
            UNION ALL
            SELECT id, user_id, seq FROM numbered
            """
        var ids: [UUID]
        var names: [String]
        var times: [Date]
        var texts: [String]
        var threads: [UUID]
        var messages: [String]
        var messageSeqs: [Int64]
        var senders: [String]
        var recipientEvents: [UUID]
        var recipientUsers: [UUID]
        var expires: Date
        func makeBindings() -> PostgresBindings {
            PostgresBindings(
                self.ids, self.names, self.times, self.texts, self.threads, self.messages, self.messageSeqs,
                self.senders, self.recipientEvents, self.recipientUsers, self.expires)
        }
    }

    /// A retry check: the unacknowledged (no `delivered_at`), unexpired deliveries of `events`
    /// get one more attempt; one marked seen too, as `mark_seen` is no acknowledgement (until
    /// the forty-fourth session a seen delivery was never tried again; a review).
    /// Their rows are locked in (user, seq) order, the order in which an `ack_events` locks a
    /// user's: locked in the order of the events' ids (receipts' ids are not time-ordered), a
    /// check and an ack deadlocked now and then (seen in an outside tester's logs; the check was
    /// requeued and nothing lost). An event's data comes with its first row only
    /// (``EventLog/Deliveries``). Only deliveries tried at most `$3` times are: a check that
    /// finds its deliveries tried more often was overtaken by another chain of checks for
    /// the same events, and ends (``RetryConsumer``). A check's count is `$4` (its level's, so
    /// that the same check run again counts nothing more); without one (a replayed dead
    /// letter), one more.
    struct Retry: PreparedRows {
        static let name = "delivery.retry"
        static let sql = """
            WITH due AS (
                SELECT user_id, seq FROM deliveries
                WHERE event_id = ANY($1::uuid[]) AND delivered_at IS NULL AND expires_at > now()
                  AND (cardinality($2::uuid[]) = 0 OR user_id = ANY($2::uuid[]))
                  AND attempts <= $3::bigint
                ORDER BY user_id, seq
                FOR UPDATE
            ), bumped AS (
                UPDATE deliveries d
                SET attempts = CASE WHEN $4::integer IS NULL THEN least(d.attempts, 2147483646) + 1
                                    ELSE greatest(d.attempts, $4::integer) END,
                    last_attempt_at = now()
                FROM due WHERE d.user_id = due.user_id AND d.seq = due.seq
                RETURNING d.user_id, d.seq, d.event_id
            )
            SELECT b.user_id, b.seq, b.event_id, e.name, e.occurred_at,
                   CASE WHEN lag(b.event_id) OVER w IS DISTINCT FROM b.event_id THEN e.data END
            FROM bumped b JOIN events e ON e.event_id = b.event_id
            WINDOW w AS (ORDER BY b.event_id, b.user_id)
            ORDER BY b.event_id, b.user_id
            """
        var events: [UUID]
        /// Only these users' deliveries (a replayed dead letter's); empty: everyone's.
        var users: [UUID] = []
        /// Which deliveries it tries (`$3`) and what it counts for them (`$4`); nil (a replayed
        /// dead letter): any, once more.
        var level: RetryLevel?
        func makeBindings() -> PostgresBindings {
            var bindings = PostgresBindings(self.events, self.users, self.level?.mostAttempts ?? .max)
            if let attemptsAfter = self.level?.attemptsAfter { bindings.append(attemptsAfter) } else { bindings.appendNull() }
            return bindings
        }
    }

    /// A chunk of `ack_events` in one statement: clamps `seq` to the user's latest seq (the
    /// target), and to `chunk` past the acknowledged seq; the user's deliveries up to it above
    /// the acknowledged seq that were not acknowledged before (no `delivered_at`) get it, and
    /// become DELIVERED unless the user marked them SEEN meanwhile; the acknowledged seq is
    /// raised (only). One row with the acknowledged seq after this chunk (the clamped seq, or
    /// the one acknowledged before when that is higher) and the target, and with each message
    /// among the newly delivered ones that someone else sent, for the receipts (null columns
    /// when there is none): a message seen before it was acknowledged gets its receipt too.
    /// All parts see the snapshot the statement started with, so the rows looked at are those
    /// above the acknowledged seq as it was before this ack.
    struct Acknowledge: PreparedRows {
        static let name = "delivery.acknowledge"
        static let sql = """
            WITH target AS (
                SELECT least($2::bigint, coalesce((SELECT last_seq FROM user_sequences WHERE user_id = $1), 0)) AS seq
            ), clamp AS (
                SELECT least((SELECT seq FROM target),
                             coalesce((SELECT acked_seq FROM user_acks WHERE user_id = $1), 0) + $3::bigint) AS seq
            ), newly AS (
                UPDATE deliveries SET status = CASE WHEN status = 'SEEN' THEN 'SEEN' ELSE 'DELIVERED' END, delivered_at = now()
                WHERE user_id = $1 AND seq <= (SELECT seq FROM clamp) AND delivered_at IS NULL
                  AND seq > coalesce((SELECT acked_seq FROM user_acks WHERE user_id = $1), 0)
                RETURNING event_id, delivered_at
            ), raised AS (
                INSERT INTO user_acks (user_id, acked_seq) SELECT $1, seq FROM clamp WHERE seq > 0
                ON CONFLICT (user_id) DO UPDATE SET acked_seq = greatest(user_acks.acked_seq, excluded.acked_seq)
            )
            SELECT greatest(clamp.seq, coalesce((SELECT acked_seq FROM user_acks WHERE user_id = $1), 0)),
                   (SELECT seq FROM target), r.thread_id, r.message_id, r.sender_id, r.delivered_at
            FROM clamp LEFT JOIN (
                SELECT e.thread_id, e.message_id, e.sender_id, newly.delivered_at, e.message_seq
                FROM newly JOIN events e ON e.event_id = newly.event_id
                WHERE e.name = 'MESSAGE_CREATED' AND e.sender_id IS NOT NULL AND e.sender_id <> $1
            ) r ON true
            ORDER BY r.message_seq
            """
        var user: UUID
        var seq: Int64
        /// How far past the user's acknowledged seq this statement goes at most.
        var chunk: Int64
        func makeBindings() -> PostgresBindings { PostgresBindings(self.user, self.seq, self.chunk) }
    }
}
