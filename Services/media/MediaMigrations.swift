import MessengerPostgres
import MessengerServiceKit

/// The `media` schema's migrations, oldest first. Never edit a shipped one; append.
enum MediaMigrations {
    static let all: [Migration] = [
        .inbox, attachments, attachmentsOfDeletedMessages, removalMarks, uploadsInProgress, uploadClaims,
        unboundBytesByOwner, contentDigests, pendingBinds,
    ]

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

    /// A deleted message's attachments are marked when media hears of the deletion, then
    /// removed with their files (``Attachments/removeMarked(of:ids:)``).
    static let attachmentsOfDeletedMessages = Migration(
        version: 3, name: "attachments_of_deleted_messages",
        statements: [
            "ALTER TABLE attachments ADD COLUMN message_deleted_at timestamptz",
            "CREATE INDEX attachments_message ON attachments (message_id) WHERE message_id IS NOT NULL",
            "CREATE INDEX attachments_of_deleted_messages ON attachments (message_deleted_at) WHERE message_deleted_at IS NOT NULL",
        ])

    /// One mark for every attachment whose file is to be removed: a deleted message's, and an
    /// upload whose lifetime ended unbound. A marked upload can no longer be bound, so the
    /// clean-up never deletes the file of an upload a bind took meanwhile.
    static let removalMarks = Migration(
        version: 4, name: "removal_marks",
        statements: [
            "ALTER TABLE attachments RENAME COLUMN message_deleted_at TO removal_marked_at",
            "ALTER INDEX attachments_of_deleted_messages RENAME TO attachments_marked_for_removal",
        ])

    /// Where each upload under way is storing its file, written before the file is: a file whose
    /// upload never got its row (a crash, a failed write) is deleted by the clean-up once it is
    /// older than an unbound upload's lifetime (``Attachments/removeAbandonedUploads(olderThan:)``).
    static let uploadsInProgress = Migration(
        version: 5, name: "uploads_in_progress",
        statements: [
            """
            CREATE TABLE uploads_in_progress (
                id uuid PRIMARY KEY,
                storage text NOT NULL,
                storage_key text NOT NULL,
                type text NOT NULL,
                started_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            "CREATE INDEX uploads_in_progress_started ON uploads_in_progress (started_at)",
        ])

    /// The clean-up claims a record of an abandoned upload (`claimed_at`) and deletes it only once
    /// its file is gone, instead of deleting a batch of records before their files: a clean-up
    /// that died part way through lost the records it had not got to, and their files stayed
    /// (the forty-fifth session's review). A claim older than
    /// ``Attachments/uploadClaimLease`` is taken again by the next pass.
    static let uploadClaims = Migration(
        version: 6, name: "upload_claims",
        statements: ["ALTER TABLE uploads_in_progress ADD COLUMN claimed_at timestamptz, ADD COLUMN claim uuid"])

    /// What a user's unbound uploads hold in all is read before each upload
    /// (``Attachments/upload(_:actor:deadline:)``).
    static let unboundBytesByOwner = Migration(
        version: 7, name: "unbound_bytes_by_owner",
        statements: [
            """
            CREATE INDEX attachments_unbound_by_owner ON attachments (owner_id)
            WHERE message_id IS NULL AND removal_marked_at IS NULL
            """
        ],
        // Built without holding uploads and binds (the forty-eighth session; the same checksum).
        buildsIndexesConcurrently: true)

    /// Each upload's SHA-256: binding a file the message already has gives that attachment
    /// (``Attachments/addAttachments(_:actor:)``). Uploads from before it have none.
    static let contentDigests = Migration(
        version: 8, name: "content_digests",
        statements: ["ALTER TABLE attachments ADD COLUMN content_sha256 bytea"])

    /// How many `add_attachments` sent an attachment to messaging without an answer yet
    /// (`attach_pending`), and whether an upload bound by one of them was never recorded by
    /// messaging (`unsettled`): a refusal gives an upload back only when neither holds it
    /// (``Attachments/addAttachments(_:actor:)``). Rows bound before it count as recorded.
    static let pendingBinds = Migration(
        version: 9, name: "pending_binds",
        statements: [
            """
            ALTER TABLE attachments ADD COLUMN attach_pending integer NOT NULL DEFAULT 0,
                ADD COLUMN unsettled boolean NOT NULL DEFAULT false
            """
        ])
}
