import Foundation
import MessengerContracts
import PostgresNIO

extension Conversations {
    /// Attachments one message may have, over all its `add_attachments`: a message, its page
    /// and its deletion stay bounded.
    static let maximumAttachmentsPerMessage = 50

    /// From media, for `add_attachments`: binds uploads of the caller to a message the caller
    /// wrote (not deleted). Binding an attachment again is a no-op; only newly bound ones are
    /// recorded in `ATTACHMENT_ADDED`. Replies with every attachment of the request.
    func attach(_ request: AttachRequest, actor: UUID?) async throws -> AttachmentList {
        let caller = try Self.caller(actor)
        guard !request.attachments.isEmpty else { throw ServiceError.invalidArgument("attachmentIds must not be empty") }
        return try await self.write { connection in
            // Exclusive: binds to one message go one at a time, so each counts the ones before
            // it (with a share lock two binds of 20 to a message of 11 both passed the limit of
            // 50). The rows are inserted in id order, so two binds that name the same uploads
            // for different messages cannot deadlock.
            let target = try await self.visibleMessage(
                request.messageId.uuid, caller: caller, locking: .exclusive, on: connection)
            guard target.sender == caller else { throw ServiceError.forbidden("only the author can add attachments") }
            guard !target.deleted else { throw ServiceError.invalidArgument("a deleted message cannot get attachments") }
            var newlyBound = Set<EntityID>()
            for var attachment in request.attachments.sorted(by: { $0.id.uuid.uuidString < $1.id.uuid.uuidString }) {
                attachment.messageId = request.messageId
                let resource = String(decoding: try MessengerJSON.encode(attachment), as: UTF8.self)
                let inserted = try await connection.query(
                    """
                    INSERT INTO message_attachments (attachment_id, message_id, resource)
                    VALUES (\(attachment.id.uuid), \(request.messageId.uuid), \(resource))
                    ON CONFLICT (attachment_id) DO NOTHING RETURNING message_id
                    """, logger: self.logger)
                var isNew = false
                for try await _ in inserted.decode(UUID.self) { isNew = true }
                if isNew {
                    newlyBound.insert(attachment.id)
                    continue
                }
                let owner = try await connection.query(
                    "SELECT message_id FROM message_attachments WHERE attachment_id = \(attachment.id.uuid)", logger: self.logger)
                for try await message in owner.decode(UUID.self) where message != request.messageId.uuid {
                    throw ServiceError.conflict("attachment \(attachment.id) is bound to another message")
                }
            }
            // In the request's order, once each.
            var listed = Set<EntityID>()
            let bound = request.attachments.filter { newlyBound.contains($0.id) && listed.insert($0.id).inserted }.map {
                attachment in
                var attachment = attachment
                attachment.messageId = request.messageId
                return attachment
            }
            if !bound.isEmpty {
                let total = try await connection.query(
                    "SELECT count(*)::bigint FROM message_attachments WHERE message_id = \(request.messageId.uuid)",
                    logger: self.logger)
                for try await count in total.decode(Int64.self) where count > Self.maximumAttachmentsPerMessage {
                    throw ServiceError.invalidArgument(
                        "a message has at most \(Self.maximumAttachmentsPerMessage) attachments")
                }
                try await self.record(
                    MessagingMessage.attachmentAdded, name: "ATTACHMENT_ADDED", thread: target.thread,
                    recipients: try await self.members(of: target.thread, on: connection),
                    data: AttachmentsAdded(threadId: EntityID(target.thread), messageId: request.messageId, attachments: bound),
                    actor: caller, on: connection)
            }
            return AttachmentList(
                attachments: request.attachments.map { attachment in
                    var attachment = attachment
                    attachment.messageId = request.messageId
                    return attachment
                })
        }
    }
}
