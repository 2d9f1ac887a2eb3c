import MessengerPostgres
import MessengerServiceKit

/// The `media` schema's migrations, oldest first. Never edit a shipped one; append.
enum MediaMigrations {
    static let all: [Migration] = [.inbox, attachments]

    static let attachments = Migration(
        version: 2, name: "attachments",
        statements: [
            """
            CREATE TABLE attachments (
                id uuid PRIMARY KEY,
                owner_id uuid NOT NULL,
                type text NOT NULL CHECK (type IN ('IMAGE', 'VIDEO', 'AUDIO', 'FILE')),
                content_type text NOT NULL,
                size_bytes bigint NOT NULL,
                file_name text NOT NULL,
                width integer,
                height integer,
                storage text NOT NULL,
                storage_key text NOT NULL,
                url text NOT NULL,
                message_id uuid,
                created_at timestamptz NOT NULL DEFAULT now(),
                bound_at timestamptz
            )
            """,
            "CREATE INDEX attachments_unbound ON attachments (created_at) WHERE message_id IS NULL",
        ])
}
