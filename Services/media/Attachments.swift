import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import PostgresNIO

/// What the media service does: stores uploads as unbound attachments of their owner, binds
/// them to the owner's messages (messaging records `ATTACHMENT_ADDED`), and removes uploads
/// never bound and the files of deleted messages.
struct Attachments: Sendable {
    let client: Database
    /// Where new uploads go.
    let store: any MediaStore
    /// Every store a row may name (`storage`), for deleting what an earlier configuration stored.
    let stores: [String: any MediaStore]
    let rpc: RPCClient
    let maximumUpload: Int
    let logger: Logger

    private static let columns =
        "id, owner_id, type, content_type, size_bytes, file_name, width, height, storage, storage_key, url, message_id, created_at"
    private typealias Row = (UUID, UUID, String, String, Int64, String, Int?, Int?, String, String, String, UUID?, Date)

    private static func resource(_ row: Row) -> Attachment {
        Attachment(
            id: EntityID(row.0), messageId: row.11.map(EntityID.init), type: row.2, url: row.10, fileName: row.5,
            contentType: row.3, sizeBytes: row.4, width: row.6, height: row.7, createdAt: row.12)
    }

    /// Validates (size, type from the bytes), stores, and records an unbound attachment.
    func upload(_ request: UploadRequest, actor: UUID?) async throws -> AttachmentEnvelope {
        guard let owner = actor else { throw ServiceError.unauthorized() }
        guard request.data.count <= self.maximumUpload else {
            throw ServiceError(.payloadTooLarge, "the file is larger than \(self.maximumUpload) bytes")
        }
        guard !request.data.isEmpty else { throw ServiceError.invalidArgument("file: the file is empty") }
        guard let media = MediaSniffer.sniff(request.data) else {
            throw ServiceError.invalidArgument("file: this type of file is not accepted")
        }
        let fileName = MediaSniffer.sanitizeFileName(request.fileName)
        let stored = try await self.store.store(request.data, fileName: fileName, media: media)
        let attachment = Attachment(
            id: .make(), messageId: nil, type: media.type, url: stored.url, fileName: fileName, contentType: media.contentType,
            sizeBytes: Int64(request.data.count), width: media.width, height: media.height, createdAt: Date())
        do {
            try await self.client.query(
                """
                INSERT INTO attachments (id, owner_id, type, content_type, size_bytes, file_name, width, height, storage, storage_key, url, created_at)
                VALUES (\(attachment.id.uuid), \(owner), \(media.type), \(media.contentType), \(attachment.sizeBytes), \(fileName),
                        \(media.width), \(media.height), \(stored.storage), \(stored.key), \(stored.url), \(attachment.createdAt))
                """, logger: self.logger)
        } catch {
            try? await self.store.delete(key: stored.key, media: media.type)
            throw error
        }
        return AttachmentEnvelope(attachment: attachment)
    }

    /// `add_attachments`: the caller's own uploads, bound to the caller's message. An upload
    /// of someone else is `forbidden`, one bound to another message `conflict`; messaging checks
    /// the message (author only) and records the event.
    func addAttachments(_ request: AddAttachmentsRequest, actor: UUID?) async throws -> AttachmentList {
        guard let caller = actor else { throw ServiceError.unauthorized() }
        var ids: [UUID] = []
        for id in request.attachmentIds.map(\.uuid) where !ids.contains(id) { ids.append(id) }
        guard (1...20).contains(ids.count) else { throw ServiceError.invalidArgument("attachmentIds must list 1 to 20 uploads") }
        let rows = try await self.client.query(
            "SELECT \(unescaped: Self.columns) FROM attachments WHERE id = ANY(\(ids))", logger: self.logger)
        var found: [UUID: (owner: UUID, attachment: Attachment)] = [:]
        for try await row in rows.decode(Row.self) { found[row.0] = (row.1, Self.resource(row)) }
        var attachments: [Attachment] = []
        for id in ids {
            guard let entry = found[id] else { throw ServiceError.notFound("no such attachment \(EntityID(id))") }
            guard entry.owner == caller else { throw ServiceError.forbidden("you can only attach your own uploads") }
            if let bound = entry.attachment.messageId, bound != request.messageId {
                throw ServiceError.conflict("attachment \(EntityID(id)) is bound to another message")
            }
            attachments.append(entry.attachment)
        }
        // Reserved for the message before messaging records it: there is no moment at which
        // messaging shows an upload that media takes for unbound (and would delete once its
        // lifetime ends). A concurrent bind to another message loses here.
        let messageID = request.messageId.uuid
        let newlyReserved = attachments.filter { $0.messageId == nil }.map(\.id.uuid)
        let reserved = try await self.client.query(
            """
            UPDATE attachments SET message_id = \(messageID), bound_at = coalesce(bound_at, now())
            WHERE id = ANY(\(ids)) AND (message_id IS NULL OR message_id = \(messageID))
            RETURNING id
            """, logger: self.logger)
        var count = 0
        for try await _ in reserved.decode(UUID.self) { count += 1 }
        guard count == ids.count else {
            try await self.release(newlyReserved, from: messageID)
            throw ServiceError.conflict("an attachment was bound to another message meanwhile")
        }
        do {
            return try await self.rpc.call(
                MessagingMessage.attach, to: .messaging,
                payload: AttachRequest(messageId: request.messageId, attachments: attachments),
                replyAs: AttachmentList.self, actor: caller)
        } catch let refusal as ServiceError where ![.unavailable, .internal].contains(refusal.code) {
            // Messaging refused (not the author, no such message): nothing of it was recorded.
            try await self.release(newlyReserved, from: messageID)
            throw refusal
        }
        // Any other failure (a timeout, a crash) may come after messaging committed: the uploads
        // stay reserved for this message, and the client's retry (messaging's attach is
        // idempotent) completes it. At worst an upload stays reserved and is never cleaned up.
    }

    private func release(_ ids: [UUID], from message: UUID) async throws {
        guard !ids.isEmpty else { return }
        try await self.client.query(
            "UPDATE attachments SET message_id = NULL, bound_at = NULL WHERE id = ANY(\(ids)) AND message_id = \(message)",
            logger: self.logger)
    }

    /// Deletes uploads never bound to a message and older than `lifetime`, files first, each
    /// from the store its row names (``removeStored(_:stillMatching:)``).
    func removeUnbound(olderThan lifetime: Duration) async throws -> Int {
        let seconds = Double(lifetime.components.seconds)
        let rows = try await self.client.query(
            """
            SELECT id, storage, storage_key, type FROM attachments
            WHERE message_id IS NULL AND created_at < now() - make_interval(secs => \(seconds))
              AND storage = ANY(\(Array(self.stores.keys)))
            ORDER BY created_at LIMIT 500
            """, logger: self.logger)
        return try await self.removeStored(rows, stillMatching: .unbound)
    }

    /// Marks the attachments of `messages`, which messaging deleted, for removal. Idempotent: a
    /// redelivered deletion marks nothing new.
    func markMessagesDeleted(_ messages: [UUID]) async throws {
        try await self.client.query(
            """
            UPDATE attachments SET message_deleted_at = now()
            WHERE message_id = ANY(\(messages)) AND message_deleted_at IS NULL
            """, logger: self.logger)
    }

    /// Deletes the files of deleted messages' attachments (marked by ``markMessagesDeleted(_:)``),
    /// then their rows, oldest marks first: those of `messages`, or all of them (the clean-up's
    /// pass, for what a store refused before; only those of `messages` after a deletion, so that
    /// a store that is down does not make every deletion retry every file left).
    func removeFilesOfDeletedMessages(_ messages: [UUID]? = nil) async throws -> Int {
        let rows = try await self.client.query(
            """
            SELECT id, storage, storage_key, type FROM attachments
            WHERE message_deleted_at IS NOT NULL AND storage = ANY(\(Array(self.stores.keys)))
              AND (\(messages)::uuid[] IS NULL OR message_id = ANY(\(messages)::uuid[]))
            ORDER BY message_deleted_at LIMIT 500
            """, logger: self.logger)
        return try await self.removeStored(rows, stillMatching: .ofDeletedMessage)
    }

    /// What a clean-up removes, as the condition its rows must still meet when they are deleted
    /// (an unbound upload may have been bound meanwhile).
    private enum Leftover: String {
        case unbound = "message_id IS NULL"
        case ofDeletedMessage = "message_deleted_at IS NOT NULL"
    }

    /// Deletes each row's file from the store the row names, then the row if it is still a
    /// `leftover`; returns how many went. A file that cannot be deleted now is logged and tried
    /// again on a later run; the others go on. Rows kept in a store this instance has no
    /// configuration for (Cloudinary ones on an instance without an account) are left to an
    /// instance that has it, and never stand in the way of the others.
    private func removeStored(_ rows: Database.Rows, stillMatching leftover: Leftover) async throws -> Int {
        var found: [(UUID, String, String, String)] = []
        for try await row in rows.decode((UUID, String, String, String).self) { found.append(row) }
        var removed = 0
        for (id, storage, key, type) in found {
            guard let store = self.stores[storage] else { continue }
            do {
                try await store.delete(key: key, media: type)
                try await self.client.query(
                    "DELETE FROM attachments WHERE id = \(id) AND \(unescaped: leftover.rawValue)", logger: self.logger)
                removed += 1
            } catch {
                self.logger.warning(
                    "removing a stored file failed; tried again later", metadata: ["attachment_id": "\(id)", "error": "\(error)"])
            }
        }
        return removed
    }
}
