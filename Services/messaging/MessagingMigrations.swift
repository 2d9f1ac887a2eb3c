import MessengerPostgres
import MessengerServiceKit

/// The `messaging` schema's migrations, oldest first. Never edit a shipped one; append.
enum MessagingMigrations {
    static let all: [Migration] = [
        .inbox, .outbox(version: 2), users, threads, messages, attachments, .outboxDeletesPublished(version: 7),
        reactionsInOneSpelling, handledRequests,
    ]

    /// The read model of auth's users (ids and display data), kept from `auth.user_*` events.
    static let users = Migration(
        version: 3, name: "users",
        statements: [
            """
            CREATE TABLE users (
                id uuid PRIMARY KEY,
                username text NOT NULL,
                display_name text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """
        ])

    static let threads = Migration(
        version: 4, name: "threads",
        statements: [
            """
            CREATE TABLE threads (
                id uuid PRIMARY KEY,
                type text NOT NULL CHECK (type IN ('DM', 'GROUP')),
                title text,
                created_by uuid NOT NULL,
                created_at timestamptz NOT NULL,
                dm_key text UNIQUE,
                last_seq bigint NOT NULL DEFAULT 0,
                last_activity_at timestamptz NOT NULL
            )
            """,
            """
            CREATE TABLE thread_members (
                thread_id uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
                user_id uuid NOT NULL,
                role text NOT NULL CHECK (role IN ('owner', 'member')),
                joined_at timestamptz NOT NULL,
                last_seen_seq bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (thread_id, user_id)
            )
            """,
            "CREATE INDEX thread_members_user ON thread_members (user_id)",
        ])

    static let messages = Migration(
        version: 5, name: "messages",
        statements: [
            """
            CREATE TABLE messages (
                id uuid PRIMARY KEY,
                thread_id uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
                seq bigint NOT NULL,
                sender_id uuid NOT NULL,
                client_message_id text NOT NULL,
                body text NOT NULL,
                reply_to_id uuid REFERENCES messages (id),
                created_at timestamptz NOT NULL,
                edited_at timestamptz,
                deleted_at timestamptz,
                UNIQUE (thread_id, seq),
                UNIQUE (thread_id, sender_id, client_message_id)
            )
            """,
            """
            CREATE TABLE reactions (
                message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                user_id uuid NOT NULL,
                emoji_hex text NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (message_id, user_id, emoji_hex)
            )
            """,
        ])

    /// The attachments bound to messages (the `Attachment` resources media announced), in the
    /// order they were bound.
    static let attachments = Migration(
        version: 6, name: "message_attachments",
        statements: [
            """
            CREATE TABLE message_attachments (
                attachment_id uuid PRIMARY KEY,
                message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
                position bigserial NOT NULL,
                resource text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX message_attachments_message ON message_attachments (message_id, position)",
        ])

    /// `emojiHex` once took leading zeros up to four digits (`0041` beside `41`, two reactions
    /// for one code point) and U+0000 (`0`). Each reaction now has its one spelling
    /// (`MessagingRules.emojiHex`): a user's reactions that name one code point sequence are
    /// merged into the earliest, and reactions with U+0000, which no client can send or remove
    /// any more, are dropped.
    static let reactionsInOneSpelling = Migration(
        version: 8, name: "reactions_in_one_spelling",
        statements: [
            #"DELETE FROM reactions WHERE emoji_hex ~ '(^|-)0+(-|$)'"#,
            #"""
            DELETE FROM reactions r USING reactions k
            WHERE k.message_id = r.message_id AND k.user_id = r.user_id AND k.emoji_hex <> r.emoji_hex
                AND regexp_replace(k.emoji_hex, '(^|-)0+([0-9a-f])', '\1\2', 'g')
                    = regexp_replace(r.emoji_hex, '(^|-)0+([0-9a-f])', '\1\2', 'g')
                AND (k.created_at, k.emoji_hex) < (r.created_at, r.emoji_hex)
            """#,
            #"""
            UPDATE reactions SET emoji_hex = regexp_replace(emoji_hex, '(^|-)0+([0-9a-f])', '\1\2', 'g')
            WHERE emoji_hex ~ '(^|-)0'
            """#,
        ])

    /// The commands that committed, by request id, with their replies (``HandledRequests``).
    static let handledRequests = Migration(
        version: 9, name: "handled_requests",
        statements: [
            """
            CREATE TABLE handled_requests (
                id uuid PRIMARY KEY,
                reply bytea NOT NULL,
                handled_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX handled_requests_age ON handled_requests (handled_at)",
        ])
}
