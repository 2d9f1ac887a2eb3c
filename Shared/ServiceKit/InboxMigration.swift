import MessengerPostgres

extension Migration {
    /// The inbox of an idempotent consumer: the ids of the messages it has processed, written in
    /// the same transaction as their effects, so a redelivered message is recognised and skipped.
    /// Every service that owns a schema starts with it.
    public static let inbox = Migration(
        version: 1, name: "inbox",
        statements: [
            """
            CREATE TABLE processed_messages (
                consumer text NOT NULL,
                message_id uuid NOT NULL,
                processed_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (consumer, message_id)
            )
            """,
            "CREATE INDEX processed_messages_processed_at ON processed_messages (processed_at)",
        ])
}
