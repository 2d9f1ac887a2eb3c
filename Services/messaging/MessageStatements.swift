import Foundation
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// The statements of a `create_message` batch (``Conversations/createMessages(_:)``),
/// prepared once per connection.
enum MessageStatements {
    /// The threads' rows, locked in id order, with their last seq, their last activity, and their
    /// members (the owner first): one row per member. The lock is taken above the sort, so in
    /// thread id order.
    struct LockThreads: PreparedRows {
        static let name = "messaging.lock_threads"
        static let sql = """
            SELECT t.id, t.last_seq, t.last_activity_at, m.user_id
            FROM threads t LEFT JOIN thread_members m ON m.thread_id = t.id
            WHERE t.id = ANY($1::uuid[])
            ORDER BY t.id, m.role = 'owner' DESC, m.user_id
            FOR UPDATE OF t
            """
        var threads: [UUID]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.threads) }
    }

    /// ``LockThreads`` for the threads whose row no other session holds locked: a locked row is
    /// skipped, not waited for (``LockedThreads``). The rows are locked on their own, before the
    /// join: on the joined rows, each member's row tries the lock again, and a thread whose holder
    /// committed part way through would come back with only some of its members (the forty-fifth
    /// session's review of its own diff).
    struct LockFreeThreads: PreparedRows {
        static let name = "messaging.lock_free_threads"
        static let sql = """
            WITH locked AS MATERIALIZED (
                SELECT id, last_seq, last_activity_at FROM threads WHERE id = ANY($1::uuid[])
                ORDER BY id FOR UPDATE SKIP LOCKED
            )
            SELECT t.id, t.last_seq, t.last_activity_at, m.user_id
            FROM locked t LEFT JOIN thread_members m ON m.thread_id = t.id
            ORDER BY t.id, m.role = 'owner' DESC, m.user_id
            """
        var threads: [UUID]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.threads) }
    }

    /// Which of the threads exist, with their members (read without a lock: a thread's members
    /// never change once it exists).
    struct ExistingThreads: PreparedRows {
        static let name = "messaging.existing_threads_with_members"
        static let sql = """
            SELECT t.id, array_agg(m.user_id) FILTER (WHERE m.user_id IS NOT NULL)
            FROM threads t LEFT JOIN thread_members m ON m.thread_id = t.id
            WHERE t.id = ANY($1::uuid[]) GROUP BY t.id
            """
        var threads: [UUID]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.threads) }
    }

    /// The messages replied to (`replyToId`), with their thread and whether they are deleted,
    /// share-locked in id order until the batch commits. The lock conflicts with the one
    /// `delete_message` takes (`FOR NO KEY UPDATE`, also in id order) before it marks a message
    /// deleted, so a reply and a delete of its target run one after the other: a reply that
    /// waited sees `deleted_at`, and a delete that waited comes after the reply. A plain read
    /// did not wait (nor does the foreign key's check, a `FOR KEY SHARE` lock), and a reply
    /// could be stored pointing to a message deleted at the same moment. The batch holds its
    /// thread rows already; no transaction locks a message and then a thread, so this order
    /// cannot deadlock.
    struct ReplyTargets: PreparedRows {
        static let name = "messaging.reply_targets"
        static let sql = """
            SELECT id, thread_id, deleted_at IS NOT NULL FROM messages WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE
            """
        var ids: [UUID]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.ids) }
    }

    /// ``ReplyTargets`` without waiting: those another session holds locked are skipped.
    struct FreeReplyTargets: PreparedRows {
        static let name = "messaging.free_reply_targets"
        static let sql = """
            SELECT id, thread_id, deleted_at IS NOT NULL FROM messages WHERE id = ANY($1::uuid[])
            ORDER BY id FOR SHARE SKIP LOCKED
            """
        var ids: [UUID]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.ids) }
    }

    /// Which of the messages exist (read without a lock).
    struct ExistingMessages: PreparedRows {
        static let name = "messaging.existing_messages"
        static let sql = "SELECT id FROM messages WHERE id = ANY($1::uuid[])"
        var ids: [UUID]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.ids) }
    }

    /// Messages written before for the same (thread, sender, client id): the 1-based position
    /// of the command, and the original's id.
    struct Retries: PreparedRows {
        static let name = "messaging.retries"
        static let sql = """
            SELECT m.id, k.n::bigint FROM messages m
            JOIN unnest($1::uuid[], $2::uuid[], $3::text[]) WITH ORDINALITY AS k(thread_id, sender_id, client_id, n)
              ON m.thread_id = k.thread_id AND m.sender_id = k.sender_id AND m.client_message_id = k.client_id
            """
        var threads: [UUID]
        var senders: [UUID]
        var clientIDs: [String]
        func makeBindings() -> PostgresBindings { PostgresBindings(self.threads, self.senders, self.clientIDs) }
    }

    /// The new messages (as columns; `replyTos` holds "" for none), each thread's new last seq
    /// and activity time (its last new message's), and the messages' events in the outbox: one statement, atomic on its
    /// own, so it is also a batch without a transaction (``KnownThreads``).
    ///
    /// It takes its locks in the order ``LockThreads`` does, so that it cannot deadlock with a
    /// batch under the locks: first the thread rows in id order (`locked`), then the rows'
    /// update, then the messages, whose `(thread_id, seq)` index entries are what a batch
    /// planned from a stale seq collides on. The `>= 0` conditions are always true; a subquery
    /// in them runs its step to the end before the next one starts.
    ///
    /// The update names its rows with `id = ANY(...)` as well as by the join: joined with the
    /// `unnest` alone, the cached plan hashed the batch and read every thread in the table
    /// (until the fifty-first session: 1,557 rows, most of the statement's time, in the bench's
    /// database), and would go on doing so up to the thousands of threads at which the planner
    /// turns to the index.
    struct Write: PreparedCommand {
        static let name = "messaging.write"
        static let sql = """
            WITH locked AS (
                SELECT id FROM threads WHERE id = ANY($9::uuid[]) ORDER BY id FOR UPDATE
            ), advanced AS (
                UPDATE threads SET last_seq = x.seq, last_activity_at = x.activity
                FROM unnest($9::uuid[], $10::bigint[], $11::timestamptz[]) AS x(id, seq, activity)
                WHERE threads.id = ANY($9::uuid[]) AND threads.id = x.id AND (SELECT count(*) FROM locked) >= 0
                RETURNING threads.id
            ), inserted AS (
                INSERT INTO messages (id, thread_id, seq, sender_id, client_message_id, body, reply_to_id, created_at)
                SELECT id, thread_id, seq, sender_id, client_id, body, NULLIF(reply_to, '')::uuid, created_at
                FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                            $8::timestamptz[])
                     AS x(id, thread_id, seq, sender_id, client_id, body, reply_to, created_at)
                WHERE (SELECT count(*) FROM advanced) >= 0
            )
            """ + Outbox.appendSQL(parametersFrom: 12)
        var ids: [UUID]
        var threads: [UUID]
        var seqs: [Int64]
        var senders: [UUID]
        var clientIDs: [String]
        var bodies: [String]
        var replyTos: [String]
        /// Each message's time.
        var createdAt: [Date]
        var touchedThreads: [UUID]
        var lastSeqs: [Int64]
        /// Each touched thread's last activity: its last new message's time.
        var lastActivities: [Date]
        var events: [Outbox.EncodedEvent]
        func makeBindings() -> PostgresBindings {
            PostgresBindings(
                self.ids, self.threads, self.seqs, self.senders, self.clientIDs, self.bodies, self.replyTos, self.createdAt,
                self.touchedThreads, self.lastSeqs, self.lastActivities, self.events.map(\.id),
                self.events.map(\.type.rawValue), self.events.map { String(decoding: $0.body, as: UTF8.self) })
        }
    }
}
