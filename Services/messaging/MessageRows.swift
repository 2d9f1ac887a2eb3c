import Foundation
import Logging
import MessengerContracts
import PostgresNIO

/// Reads messages and their reactions into the contract's `Message`.
enum MessageRows {
    static let columns =
        "m.id, m.thread_id, m.seq, m.sender_id, m.client_message_id, m.body, m.reply_to_id, m.created_at, m.edited_at, m.deleted_at"

    typealias Row = (UUID, UUID, Int64, UUID, String, String, UUID?, Date, Date?, Date?)

    static func message(_ row: Row, reactions: [ReactionGroup], attachments: [Attachment]) -> ChatMessage {
        let deleted = row.9 != nil
        return ChatMessage(
            id: EntityID(row.0), threadId: EntityID(row.1), senderId: EntityID(row.3), clientMessageId: row.4, seq: row.2,
            body: deleted ? "" : row.5, replyToId: row.6.map(EntityID.init), attachments: deleted ? [] : attachments,
            reactions: deleted ? [] : reactions, createdAt: row.7, editedAt: row.8, deletedAt: row.9)
    }

    /// Runs a query whose columns are ``columns`` and builds the messages, in the query's order.
    static func load(
        _ query: PostgresQuery, on connection: PostgresConnection, logger: Logger
    ) async throws -> [ChatMessage] {
        var rows: [Row] = []
        for try await row in try await connection.query(query, logger: logger).decode(Row.self) { rows.append(row) }
        let live = rows.filter { $0.9 == nil }.map(\.0)
        let reactions = try await self.reactions(of: live, on: connection, logger: logger)
        let attachments = try await self.attachments(of: live, on: connection, logger: logger)
        return rows.map { self.message($0, reactions: reactions[$0.0] ?? [], attachments: attachments[$0.0] ?? []) }
    }

    /// ``columns`` and how many reactions the message has, for ``loadCounted(_:on:logger:)``:
    /// counted in the index of `reactions`, without reading them.
    static let countedColumns = columns + ", (SELECT count(*) FROM reactions r WHERE r.message_id = m.id)::bigint"

    /// A message of a page read before its reactions (``loadCounted(_:on:logger:)``).
    struct Counted {
        /// The message with its attachments, and no reactions yet.
        var message: ChatMessage
        /// How many reactions it has.
        var reactions: Int

        /// What its reactions will add to the page, at most unless the message is from before
        /// the bound on emoji (``PageBytes/ofReactions(count:)``).
        var reactionBytes: Int { PageBytes.ofReactions(count: self.reactions) }
    }

    /// Runs a query whose columns are ``countedColumns`` and builds the messages without their
    /// reactions, in the query's order: a page is cut to size first (``PageBytes``), and only
    /// the reactions of the messages it keeps are read (``withReactions(_:on:logger:)``). Until
    /// the forty-eighth session every row's reactions were read, and a page of 100 messages
    /// with 20 emoji of 256 users each read 512,000 rows to send five messages.
    static func loadCounted(
        _ query: PostgresQuery, on connection: PostgresConnection, logger: Logger
    ) async throws -> [Counted] {
        typealias CountedRow = (UUID, UUID, Int64, UUID, String, String, UUID?, Date, Date?, Date?, Int64)
        var rows: [CountedRow] = []
        for try await row in try await connection.query(query, logger: logger).decode(CountedRow.self) { rows.append(row) }
        let live = rows.filter { $0.9 == nil }.map(\.0)
        let attachments = try await self.attachments(of: live, on: connection, logger: logger)
        return rows.map { row in
            let message = self.message(
                (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9), reactions: [],
                attachments: attachments[row.0] ?? [])
            return Counted(message: message, reactions: message.deletedAt == nil ? Int(row.10) : 0)
        }
    }

    /// `messages` with their reactions read.
    static func withReactions(
        _ messages: [ChatMessage], on connection: PostgresConnection, logger: Logger
    ) async throws -> [ChatMessage] {
        let live = messages.filter { $0.deletedAt == nil }.map(\.id.uuid)
        let reactions = try await self.reactions(of: live, on: connection, logger: logger)
        return messages.map { message in
            var message = message
            message.reactions = reactions[message.id.uuid] ?? []
            return message
        }
    }

    /// The attachments bound to `messages`, in the order they were bound.
    static func attachments(
        of messages: [UUID], on connection: PostgresConnection, logger: Logger
    ) async throws -> [UUID: [Attachment]] {
        guard !messages.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT message_id, resource FROM message_attachments WHERE message_id = ANY(\(messages)) ORDER BY message_id, position
            """, logger: logger)
        var found: [UUID: [Attachment]] = [:]
        for try await (message, resource) in rows.decode((UUID, String).self) {
            found[message, default: []].append(try MessengerJSON.decode(Attachment.self, from: Data(resource.utf8)))
        }
        return found
    }

    /// The reactions of `messages`, grouped by emoji in the order each emoji was first used.
    static func reactions(
        of messages: [UUID], on connection: PostgresConnection, logger: Logger
    ) async throws -> [UUID: [ReactionGroup]] {
        guard !messages.isEmpty else { return [:] }
        let rows = try await connection.query(
            """
            SELECT message_id, emoji_hex, array_agg(user_id ORDER BY created_at, user_id)
            FROM reactions WHERE message_id = ANY(\(messages))
            GROUP BY message_id, emoji_hex ORDER BY message_id, min(created_at), emoji_hex
            """, logger: logger)
        var groups: [UUID: [ReactionGroup]] = [:]
        for try await (message, emoji, users) in rows.decode((UUID, String, [UUID]).self) {
            groups[message, default: []].append(ReactionGroup(emojiHex: emoji, userIds: users.map(EntityID.init)))
        }
        return groups
    }
}
