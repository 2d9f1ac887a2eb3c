import Foundation
import MessengerContracts
import MessengerServiceKit
import PostgresNIO

extension Conversations {
    /// Different emoji one message may have (as Discord allows): every member may use each of
    /// them, but a message, which carries its reactions in every page, thread summary and
    /// event, stays bounded (20 emoji of 256 members is about 200 KB at worst). Until the
    /// thirty-eighth session there was no bound: an outside tester gave one message 16,000
    /// reactions, 1.2 MB in every member's thread list and in each of its edits' events.
    static let maximumEmojiPerMessage = 20

    /// `add_reaction`: idempotent; only the first add records `REACTION_ADDED`. Like an edit, it
    /// does not commit past its `deadline` (``updateMessage(_:actor:requestID:deadline:)``).
    func addReaction(
        _ request: ReactionTarget, actor: UUID?, requestID: UUID, deadline: ContinuousClock.Instant?
    ) async throws -> ReactionEnvelope {
        let caller = try Self.caller(actor)
        let emoji = try MessagingRules.emojiHex(request.emojiHex)
        let id = request.messageId.uuid
        return try await self.write(once: requestID) { connection in
            let target = try await self.visibleMessage(id, caller: caller, locking: .exclusive, on: connection)
            guard !target.deleted else { throw ServiceError.invalidArgument("a deleted message cannot get reactions") }
            let inserted = try await connection.query(
                """
                INSERT INTO reactions (message_id, user_id, emoji_hex, created_at)
                VALUES (\(id), \(caller), \(emoji), greatest(clock_timestamp(), (SELECT created_at FROM messages WHERE id = \(id))))
                ON CONFLICT DO NOTHING RETURNING created_at
                """, logger: self.logger)
            var createdAt: Date?
            for try await at in inserted.decode(Date.self) { createdAt = at }
            if createdAt != nil {
                // The message's row is locked exclusively: concurrent adds count one after the other.
                // Only a new emoji counts: one already there adds none, also on a message from
                // before the bound with more (until the fifty-second session joining one was
                // refused there, a review).
                let emojiCount = try await connection.query(
                    """
                    SELECT count(DISTINCT emoji_hex)::bigint, count(*) FILTER (WHERE emoji_hex = \(emoji))::bigint
                    FROM reactions WHERE message_id = \(id)
                    """, logger: self.logger)
                for try await (count, sameEmoji) in emojiCount.decode((Int64, Int64).self)
                where count > Self.maximumEmojiPerMessage && sameEmoji == 1 {
                    throw ServiceError.invalidArgument(
                        "a message has at most \(Self.maximumEmojiPerMessage) different reactions")
                }
                try await self.record(
                    MessagingMessage.reactionAdded, name: "REACTION_ADDED", thread: target.thread,
                    recipients: try await self.members(of: target.thread, on: connection),
                    data: ReactionChange(
                        threadId: EntityID(target.thread), messageId: request.messageId, userId: EntityID(caller),
                        emojiHex: emoji),
                    actor: caller, on: connection)
            } else {
                let existing = try await connection.query(
                    "SELECT created_at FROM reactions WHERE message_id = \(id) AND user_id = \(caller) AND emoji_hex = \(emoji)",
                    logger: self.logger)
                for try await at in existing.decode(Date.self) { createdAt = at }
            }
            try CommitDeadline.ensureTimeLeft(before: deadline)
            return ReactionEnvelope(
                reaction: Reaction(
                    messageId: request.messageId, userId: EntityID(caller), emojiHex: emoji, createdAt: createdAt ?? Date()))
        }
    }

    /// `remove_reaction`: idempotent; only an actual removal records `REACTION_REMOVED`. Like an
    /// edit, it does not commit past its `deadline` (``updateMessage(_:actor:requestID:deadline:)``).
    func removeReaction(
        _ request: ReactionTarget, actor: UUID?, requestID: UUID, deadline: ContinuousClock.Instant?
    ) async throws -> ReactionTarget {
        let caller = try Self.caller(actor)
        let emoji = try MessagingRules.emojiHex(request.emojiHex, shown: false)
        let id = request.messageId.uuid
        return try await self.write(once: requestID) { connection in
            let target = try await self.visibleMessage(id, caller: caller, locking: .share, on: connection)
            let removed = try await connection.query(
                "DELETE FROM reactions WHERE message_id = \(id) AND user_id = \(caller) AND emoji_hex = \(emoji) RETURNING 1",
                logger: self.logger)
            var didRemove = false
            for try await _ in removed.decode(Int.self) { didRemove = true }
            if didRemove {
                try await self.record(
                    MessagingMessage.reactionRemoved, name: "REACTION_REMOVED", thread: target.thread,
                    recipients: try await self.members(of: target.thread, on: connection),
                    data: ReactionChange(
                        threadId: EntityID(target.thread), messageId: request.messageId, userId: EntityID(caller),
                        emojiHex: emoji),
                    actor: caller, on: connection)
            }
            try CommitDeadline.ensureTimeLeft(before: deadline)
            return ReactionTarget(messageId: request.messageId, emojiHex: emoji)
        }
    }

    /// `mark_seen`: moves the caller's seen mark forward to the message (never back); a move
    /// records `MESSAGE_SEEN` for the other members. Its `at` is when the mark moved, after the
    /// member's row was locked: the transaction's start (`now()`, until the fiftieth session)
    /// let a mark that waited for another's lock carry an earlier time than the mark before it
    /// (a review). A reaction's `createdAt` likewise. Both are never before the message's own
    /// `createdAt`, which the replica's clock dated (an edit's and a deletion's times are
    /// clamped so too): a replica whose clock ran ahead made reactions and seen marks older than
    /// their message until the fifty-fourth session (a review).
    func markSeen(_ request: SeenMark, actor: UUID?) async throws -> SeenMark {
        let caller = try Self.caller(actor)
        let thread = request.threadId.uuid
        return try await self.write { connection in
            try await self.requireMember(caller, of: thread, on: connection)
            let target = try await self.visibleMessage(request.messageId.uuid, caller: caller, on: connection)
            guard target.thread == thread else { throw ServiceError.notFound("no such message in this thread") }
            let moved = try await connection.query(
                """
                UPDATE thread_members SET last_seen_seq = \(target.seq)
                WHERE thread_id = \(thread) AND user_id = \(caller) AND last_seen_seq < \(target.seq)
                RETURNING greatest(clock_timestamp(), (SELECT created_at FROM messages WHERE id = \(request.messageId.uuid)))
                """, logger: self.logger)
            var seenAt: Date?
            for try await at in moved.decode(Date.self) { seenAt = at }
            if let seenAt {
                let others = try await self.members(of: thread, on: connection).filter { $0 != caller }
                try await self.record(
                    MessagingMessage.messageSeen, name: "MESSAGE_SEEN", thread: thread, recipients: others,
                    data: MessageReceipt(
                        threadId: request.threadId, messageId: request.messageId, userId: EntityID(caller), at: seenAt),
                    actor: caller, on: connection)
            }
            return request
        }
    }
}
