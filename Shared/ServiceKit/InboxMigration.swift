import MessengerPostgres

extension Migration {
    /// The inbox of an idempotent consumer: the ids of the messages it has processed. Every
    /// service schema shipped with it, so it stays; no consumer writes it any more, because each
    /// is idempotent by a key of its own (delivery: the `events` primary key, which replaced its
    /// inbox in migration 4; messaging's user read model and the gateway's key cache: upserts).
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
