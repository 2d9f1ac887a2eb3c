import Foundation
import MessengerContracts
import MessengerServiceKit
import PostgresNIO

extension Conversations {
    /// `update_message`: the author edits the body of a message that is not deleted. Sending the
    /// body it has already changes nothing (no new `editedAt`, no event), like a repeated
    /// `create_message`.
    ///
    /// It does not commit past its `deadline` (``CommitDeadline``; a request delivered again has
    /// it passed): its caller was answered `unavailable` by then. Until the fiftieth session an
    /// edit whose replica froze before its commit ran again on another a minute later and undid
    /// the edit the user made after being told the first failed (a review; so did a reaction's
    /// add or removal).
    func updateMessage(
        _ request: UpdateMessageRequest, actor: UUID?, requestID: UUID, deadline: ContinuousClock.Instant?
    ) async throws -> MessageEnvelope {
        let caller = try Self.caller(actor)
        let body = try self.rules.body(request.body)
        let id = request.messageId.uuid
        return try await self.write(once: requestID) { connection in
            let target = try await self.visibleMessage(id, caller: caller, on: connection)
            guard target.sender == caller else { throw ServiceError.forbidden("only the author can edit a message") }
            // Edits of one message take its row one after the other, and each `editedAt` is
            // later than the one before (at least by a millisecond, the contract's precision):
            // `now()`, the transaction's start, let an edit that waited for another's lock carry
            // an earlier time than the edit clients got before it. Nor is it earlier than the
            // message's `createdAt`, which the replica that wrote it took from its own clock: one
            // running ahead of the database's made edits that came before their message (a
            // review in the forty-fourth session).
            let updated = try await connection.query(
                """
                UPDATE messages SET body = \(body), edited_at = greatest(clock_timestamp(), edited_at + interval '1 millisecond', created_at)
                WHERE id = \(id) AND deleted_at IS NULL AND body <> \(body) RETURNING 1
                """, logger: self.logger)
            var changed = false
            for try await _ in updated.decode(Int.self) { changed = true }
            let messages = try await MessageRows.load(
                "SELECT \(unescaped: MessageRows.columns) FROM messages m WHERE m.id = \(id)", on: connection, logger: self.logger
            )
            guard let message = messages.first else { throw ServiceError.notFound("no such message") }
            guard message.deletedAt == nil else { throw ServiceError.invalidArgument("a deleted message cannot be edited") }
            // The body it has already: nothing is edited, and nothing is announced.
            guard changed else { return MessageEnvelope(message: message) }
            try await self.record(
                MessagingMessage.messageUpdated, name: "MESSAGE_UPDATED", thread: target.thread,
                recipients: try await self.members(of: target.thread, on: connection),
                data: MessageEnvelope(message: message), actor: caller, on: connection)
            try CommitDeadline.ensureTimeLeft(before: deadline)
            return MessageEnvelope(message: message)
        }
    }

    /// `delete_message`: soft-deletes 1...100 messages of one thread, all by the caller. The body
    /// and reactions are erased; deleting again is a no-op that records nothing.
    func deleteMessages(_ request: DeleteMessagesRequest, actor: UUID?) async throws -> DeletedMessages {
        let caller = try Self.caller(actor)
        // The ids as sent count, repeats included, as protocol.md has it (until the fifty-fourth
        // session 150 ids that were 100 distinct ones passed; a review).
        guard (1...self.rules.maximumDeleteBatch).contains(request.messageIds.count) else {
            throw ServiceError.invalidArgument("messageIds must list 1 to \(self.rules.maximumDeleteBatch) messages")
        }
        var seen = Set<UUID>()  // not a search of the list so far, which was quadratic in the ids sent
        let ids = request.messageIds.map(\.uuid).filter { seen.insert($0).inserted }
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
            // The rows are locked first (in one order, so two deletes of overlapping messages
            // cannot deadlock), then one `deletedAt` is taken for all of them: a delete that
            // waited for an edit's lock is later than that edit's `editedAt`, which `now()`, the
            // transaction's start, was not (the thirty-ninth session's review).
            _ = try await connection.query(
                """
                SELECT id FROM messages WHERE id = ANY(\(ids)) AND deleted_at IS NULL ORDER BY id FOR NO KEY UPDATE
                """, logger: self.logger
            ).collect()
            let deleted = try await connection.query(
                """
                UPDATE messages SET body = '', deleted_at = (
                    SELECT greatest(clock_timestamp(), max(edited_at), max(created_at)) FROM messages WHERE id = ANY(\(ids))
                )
                WHERE id = ANY(\(ids)) AND deleted_at IS NULL
                RETURNING id, deleted_at
                """, logger: self.logger)
            var newlyDeleted: [UUID] = []
            var deletedAt: Date?
            for try await (id, at) in deleted.decode((UUID, Date).self) {
                newlyDeleted.append(id)
                deletedAt = at
            }
            if !newlyDeleted.isEmpty {
                try await connection.query("DELETE FROM reactions WHERE message_id = ANY(\(newlyDeleted))", logger: self.logger)
                let order = ids.filter(newlyDeleted.contains)
                try await self.record(
                    MessagingMessage.messagesDeleted, name: "MESSAGES_DELETED", thread: thread,
                    recipients: try await self.members(of: thread, on: connection),
                    data: DeletedMessages(threadId: EntityID(thread), messageIds: order.map(EntityID.init), deletedAt: deletedAt),
                    actor: caller, on: connection)
            }
            return DeletedMessages(threadId: EntityID(thread), messageIds: ids.map(EntityID.init))
        }
    }

    /// How ``visibleMessage(_:caller:locking:on:)`` locks the message's row until the
    /// transaction ends.
    enum MessageLock {
        case none
        /// For a change that relies on the message staying as it is (a reaction removed): an
        /// edit or delete running beside it waits for it, or it waits for them and sees what
        /// they did.
        case share
        /// ``share``, and one such change at a time (a reaction added, attachments bound: the
        /// message's count of emoji or attachments is read after the changes before it
        /// committed).
        case exclusive
    }

    /// A message in one of the caller's threads, or `not_found` (whether it exists elsewhere is
    /// not the caller's business).
    ///
    /// `locking` (``MessageLock``): a delete running beside a reaction or attachment waits for
    /// it, then erases what it added, and a change that waited for a delete sees `deleted`
    /// (without the lock, a reaction added while the message was being deleted stayed, and its
    /// event reached clients after the delete's). An edit and a reaction's change are ordered
    /// the same way, so the edit's event carries the reactions as they are by its position
    /// (until the thirty-ninth session a removal took no lock: an edit beside it read the
    /// reaction before the removal committed and recorded its event after the removal's,
    /// bringing the reaction back on every client). Adds are one at a time, so their count of
    /// emoji sees each other (with a share lock 30 adds at once stored 25 emoji of the 20).
    func visibleMessage(
        _ id: UUID, caller: UUID, locking: MessageLock = .none, on connection: PostgresConnection
    ) async throws -> (thread: UUID, sender: UUID, seq: Int64, deleted: Bool) {
        let lock =
            switch locking {
            case .none: ""
            case .share: "FOR SHARE OF m"
            case .exclusive: "FOR NO KEY UPDATE OF m"
            }
        let rows = try await connection.query(
            """
            SELECT m.thread_id, m.sender_id, m.seq, m.deleted_at IS NOT NULL FROM messages m
            JOIN thread_members tm ON tm.thread_id = m.thread_id AND tm.user_id = \(caller)
            WHERE m.id = \(id) \(unescaped: lock)
            """, logger: self.logger)
        for try await (thread, sender, seq, deleted) in rows.decode((UUID, UUID, Int64, Bool).self) {
            return (thread, sender, seq, deleted)
        }
        throw ServiceError.notFound("no such message")
    }
}
