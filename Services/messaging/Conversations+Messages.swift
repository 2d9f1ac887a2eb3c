import Foundation
import MessengerContracts
import PostgresNIO

extension Conversations {
    /// Thrown inside a `create_message` transaction that found the message already written (a
    /// retried emit): rolls the transaction back, and the original is returned.
    private struct AlreadyCreated: Error {}

    /// `create_message`: members only; the thread's row lock orders concurrent senders, so each
    /// message gets the next `seq` with no duplicate and no gap; `(sender, thread,
    /// clientMessageId)` makes a retry return the original and record nothing.
    func createMessage(_ request: CreateMessageRequest, actor: UUID?) async throws -> MessageEnvelope {
        let caller = try Self.caller(actor)
        let body = try MessagingRules.body(request.body)
        let clientMessageID = try MessagingRules.clientMessageID(request.clientMessageId)
        let thread = request.threadId.uuid
        do {
            return try await self.write { connection in
                // Takes the thread's row lock: concurrent senders in one thread queue here.
                let locked = try await connection.query(
                    """
                    UPDATE threads SET last_seq = last_seq + 1, last_activity_at = clock_timestamp()
                    WHERE id = \(thread) AND EXISTS (SELECT 1 FROM thread_members WHERE thread_id = \(thread) AND user_id = \(caller))
                    RETURNING last_seq, last_activity_at, ARRAY(SELECT user_id FROM thread_members WHERE thread_id = \(thread))
                    """, logger: self.logger)
                var next: (seq: Int64, at: Date, members: [UUID])?
                for try await row in locked.decode((Int64, Date, [UUID]).self) { next = row }
                guard let next else {
                    try await self.requireMember(caller, of: thread, on: connection)
                    throw ServiceError.notFound("no such thread")
                }
                if let replyTo = request.replyToId?.uuid {
                    let rows = try await connection.query(
                        "SELECT 1 FROM messages WHERE id = \(replyTo) AND thread_id = \(thread)", logger: self.logger)
                    var found = false
                    for try await _ in rows.decode(Int.self) { found = true }
                    guard found else { throw ServiceError.invalidArgument("replyToId must be a message of the same thread") }
                }
                let message = ChatMessage(
                    id: .make(), threadId: request.threadId, senderId: EntityID(caller), clientMessageId: clientMessageID,
                    seq: next.seq, body: body, replyToId: request.replyToId, attachments: [], reactions: [],
                    createdAt: next.at, editedAt: nil, deletedAt: nil)
                let inserted = try await connection.query(
                    """
                    INSERT INTO messages (id, thread_id, seq, sender_id, client_message_id, body, reply_to_id, created_at)
                    VALUES (\(message.id.uuid), \(thread), \(message.seq), \(caller), \(clientMessageID), \(body),
                            \(request.replyToId?.uuid), \(message.createdAt))
                    ON CONFLICT (thread_id, sender_id, client_message_id) DO NOTHING RETURNING 1
                    """, logger: self.logger)
                var isNew = false
                for try await _ in inserted.decode(Int.self) { isNew = true }
                guard isNew else { throw AlreadyCreated() }
                try await self.record(
                    MessagingMessage.messageCreated, name: "MESSAGE_CREATED", thread: thread, recipients: next.members,
                    data: MessageEnvelope(message: message), actor: caller, on: connection)
                return MessageEnvelope(message: message)
            }
        } catch is AlreadyCreated {
            let original = try await self.client.withConnection { connection in
                try await MessageRows.load(
                    """
                    SELECT \(unescaped: MessageRows.columns) FROM messages m
                    WHERE m.thread_id = \(thread) AND m.sender_id = \(caller) AND m.client_message_id = \(clientMessageID)
                    """, on: connection, logger: self.logger)
            }
            guard let message = original.first else { throw ServiceError.internal("the original message vanished") }
            return MessageEnvelope(message: message)
        }
    }

    /// `update_message`: the author edits the body of a message that is not deleted.
    func updateMessage(_ request: UpdateMessageRequest, actor: UUID?) async throws -> MessageEnvelope {
        let caller = try Self.caller(actor)
        let body = try MessagingRules.body(request.body)
        let id = request.messageId.uuid
        return try await self.write { connection in
            let target = try await self.visibleMessage(id, caller: caller, on: connection)
            guard target.sender == caller else { throw ServiceError.forbidden("only the author can edit a message") }
            let updated = try await connection.query(
                "UPDATE messages SET body = \(body), edited_at = now() WHERE id = \(id) AND deleted_at IS NULL RETURNING 1",
                logger: self.logger)
            var changed = false
            for try await _ in updated.decode(Int.self) { changed = true }
            guard changed else { throw ServiceError.invalidArgument("a deleted message cannot be edited") }
            let messages = try await MessageRows.load(
                "SELECT \(unescaped: MessageRows.columns) FROM messages m WHERE m.id = \(id)", on: connection, logger: self.logger
            )
            guard let message = messages.first else { throw ServiceError.notFound("no such message") }
            try await self.record(
                MessagingMessage.messageUpdated, name: "MESSAGE_UPDATED", thread: target.thread,
                recipients: try await self.members(of: target.thread, on: connection),
                data: MessageEnvelope(message: message), actor: caller, on: connection)
            return MessageEnvelope(message: message)
        }
    }

    /// `delete_message`: soft-deletes 1...100 messages of one thread, all by the caller. The body
    /// and reactions are erased; deleting again is a no-op that records nothing.
    func deleteMessages(_ request: DeleteMessagesRequest, actor: UUID?) async throws -> DeletedMessages {
        let caller = try Self.caller(actor)
        var ids: [UUID] = []
        for id in request.messageIds.map(\.uuid) where !ids.contains(id) { ids.append(id) }
        guard (1...MessagingRules.maximumDeleteBatch).contains(ids.count) else {
            throw ServiceError.invalidArgument("messageIds must list 1 to \(MessagingRules.maximumDeleteBatch) messages")
        }
        return try await self.write { connection in
            let rows = try await connection.query(
                """
                SELECT m.thread_id, m.sender_id FROM messages m
                JOIN thread_members tm ON tm.thread_id = m.thread_id AND tm.user_id = \(caller)
                WHERE m.id = ANY(\(ids))
                """, logger: self.logger)
            var threads = Set<UUID>()
            var senders = Set<UUID>()
            var found = 0
            for try await (thread, sender) in rows.decode((UUID, UUID).self) {
                threads.insert(thread)
                senders.insert(sender)
                found += 1
            }
            guard found == ids.count, let thread = threads.first else { throw ServiceError.notFound("no such message") }
            guard threads.count == 1 else { throw ServiceError.invalidArgument("messageIds must all be in one thread") }
            guard senders == [caller] else { throw ServiceError.forbidden("only the author can delete a message") }
            let deleted = try await connection.query(
                """
                UPDATE messages SET deleted_at = now(), body = '' WHERE id = ANY(\(ids)) AND deleted_at IS NULL
                RETURNING id
                """, logger: self.logger)
            var newlyDeleted: [UUID] = []
            for try await id in deleted.decode(UUID.self) { newlyDeleted.append(id) }
            if !newlyDeleted.isEmpty {
                try await connection.query("DELETE FROM reactions WHERE message_id = ANY(\(newlyDeleted))", logger: self.logger)
                let order = ids.filter(newlyDeleted.contains)
                try await self.record(
                    MessagingMessage.messagesDeleted, name: "MESSAGES_DELETED", thread: thread,
                    recipients: try await self.members(of: thread, on: connection),
                    data: DeletedMessages(threadId: EntityID(thread), messageIds: order.map(EntityID.init)), actor: caller,
                    on: connection)
            }
            return DeletedMessages(threadId: EntityID(thread), messageIds: ids.map(EntityID.init))
        }
    }

    /// A message in one of the caller's threads, or `not_found` (whether it exists elsewhere is
    /// not the caller's business).
    func visibleMessage(
        _ id: UUID, caller: UUID, on connection: PostgresConnection
    ) async throws -> (thread: UUID, sender: UUID, seq: Int64, deleted: Bool) {
        let rows = try await connection.query(
            """
            SELECT m.thread_id, m.sender_id, m.seq, m.deleted_at IS NOT NULL FROM messages m
            JOIN thread_members tm ON tm.thread_id = m.thread_id AND tm.user_id = \(caller)
            WHERE m.id = \(id)
            """, logger: self.logger)
        for try await (thread, sender, seq, deleted) in rows.decode((UUID, UUID, Int64, Bool).self) {
            return (thread, sender, seq, deleted)
        }
        throw ServiceError.notFound("no such message")
    }
}
