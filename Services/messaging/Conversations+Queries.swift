import Foundation
import MessengerContracts
import PostgresNIO

extension Conversations {
    static let maximumPageSize = 100

    /// The caller's threads, newest activity first, each with its last message and the caller's
    /// unread count (others' messages after the caller's seen mark, deleted ones excluded). A
    /// page stops early, with its cursor, once it passes about a megabyte (``PageBytes``).
    func listThreads(_ request: ListThreadsRequest, actor: UUID?) async throws -> Page<ThreadSummary> {
        let caller = try Self.caller(actor)
        let limit = try Self.pageSize(request.limit)
        let after = try request.cursor.map(Cursor.threadPosition)
        return try await self.client.withConnection { connection in
            let rows = try await connection.query(
                """
                SELECT t.id, t.type, t.title, t.created_by, t.created_at, t.last_seq, m.last_seen_seq,
                       (extract(epoch FROM t.last_activity_at) * 1000000)::bigint AS activity
                FROM thread_members m JOIN threads t ON t.id = m.thread_id
                WHERE m.user_id = \(caller)
                  AND (\(after == nil) OR ((extract(epoch FROM t.last_activity_at) * 1000000)::bigint, t.id)
                       < (\(after?.activity ?? 0), \(after?.id ?? UUID())))
                ORDER BY activity DESC, t.id DESC LIMIT \(limit + 1)
                """, logger: self.logger)
            typealias Row = (UUID, String, String?, UUID, Date, Int64, Int64, Int64)
            var page: [Row] = []
            for try await row in rows.decode(Row.self) { page.append(row) }
            let hasMore = page.count > limit
            page = Array(page.prefix(limit))
            guard !page.isEmpty else { return Page(items: [], nextCursor: nil) }
            let ids = page.map(\.0)

            var members: [UUID: [UUID]] = [:]
            let memberRows = try await connection.query(
                """
                SELECT thread_id, user_id FROM thread_members WHERE thread_id = ANY(\(ids))
                ORDER BY thread_id, role = 'owner' DESC, user_id
                """, logger: self.logger)
            for try await (thread, user) in memberRows.decode((UUID, UUID).self) { members[thread, default: []].append(user) }

            let withMessages = page.filter { $0.5 > 0 }
            let lastMessages = try await MessageRows.loadCounted(
                """
                SELECT \(unescaped: MessageRows.countedColumns) FROM messages m
                JOIN unnest(\(withMessages.map(\.0))::uuid[], \(withMessages.map(\.5))::bigint[]) AS last(thread_id, seq)
                  ON m.thread_id = last.thread_id AND m.seq = last.seq
                """, on: connection, logger: self.logger)
            let lastByThread = Dictionary(
                lastMessages.map { ($0.message.threadId.uuid, $0) }, uniquingKeysWith: { first, _ in first })

            // Unread: the other members' messages after the caller's seen mark and after the
            // caller's own latest message (replying means having read what came before, as chat
            // apps count it; the mark itself does not move), up to the last seq read above, so
            // that a message committed meanwhile is in neither the count nor `lastMessage`.
            // The caller's latest is found walking back from the last message (`(thread_id,
            // seq)`), which reads no more than the count does; until the fortieth session it read
            // every message the caller sent after the mark (20,000 for a writer who never marks
            // seen: 8.8 ms a thread, now 0.14).
            var unread: [UUID: Int] = [:]
            let unreadRows = try await connection.query(
                """
                WITH mark AS (
                    SELECT * FROM unnest(\(ids)::uuid[], \(page.map(\.6))::bigint[], \(page.map(\.5))::bigint[])
                        AS mark(thread_id, seen, last)
                ), read AS (
                    SELECT mark.thread_id, mark.last, greatest(mark.seen, coalesce(own.seq, 0)) AS upto
                    FROM mark LEFT JOIN LATERAL (
                        SELECT m.seq FROM messages m
                        WHERE m.thread_id = mark.thread_id AND m.seq > mark.seen AND m.seq <= mark.last
                          AND m.sender_id = \(caller)
                        ORDER BY m.seq DESC LIMIT 1
                    ) own ON true
                )
                SELECT msg.thread_id, count(*)::bigint FROM messages msg
                JOIN read ON msg.thread_id = read.thread_id AND msg.seq > read.upto AND msg.seq <= read.last
                WHERE msg.sender_id <> \(caller) AND msg.deleted_at IS NULL
                GROUP BY msg.thread_id
                """, logger: self.logger)
            for try await (thread, count) in unreadRows.decode((UUID, Int64).self) { unread[thread] = Int(count) }

            var items = page.map { row in
                ThreadSummary(
                    thread: ChatThread(
                        id: EntityID(row.0), type: ThreadKind(rawValue: row.1) ?? .group, title: row.2,
                        createdBy: EntityID(row.3), memberIds: (members[row.0] ?? []).map(EntityID.init), createdAt: row.4),
                    lastMessage: lastByThread[row.0]?.message, unreadCount: unread[row.0] ?? 0)
            }
            // Cut to size before the kept last messages' reactions are read (``MessageRows/loadCounted(_:on:logger:)``).
            let fitting = PageBytes.fitting(items) { summary in
                PageBytes.of(summary) + (summary.lastMessage.flatMap { lastByThread[$0.threadId.uuid]?.reactionBytes } ?? 0)
            }
            let counted = items.count
            items = Array(items.prefix(fitting))
            let withReactions = try await MessageRows.withReactions(
                items.compactMap(\.lastMessage), on: connection, logger: self.logger)
            let reacted = Dictionary(withReactions.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            for index in items.indices {
                items[index].lastMessage = items[index].lastMessage.flatMap { reacted[$0.id] }
            }
            // Measured again: a last message from before the bound on emoji may have more than counted.
            items = Array(items.prefix(PageBytes.fitting(items, size: PageBytes.of)))
            let cutShort = items.count < counted
            page = Array(page.prefix(items.count))
            let next =
                hasMore || cutShort ? page.last.map { Cursor.encode(Cursor.ThreadPosition(activity: $0.7, id: $0.0)) } : nil
            return Page(items: items, nextCursor: next)
        }
    }

    /// A thread's messages, newest first, members only; a page stops early, with its cursor,
    /// once it passes about a megabyte (``PageBytes``).
    func listMessages(_ request: ListMessagesRequest, actor: UUID?) async throws -> Page<ChatMessage> {
        let caller = try Self.caller(actor)
        let limit = try Self.pageSize(request.limit)
        let thread = request.threadId.uuid
        let before = try request.before.map { try Cursor.beforeSeq($0, in: thread) } ?? Int64.max
        return try await self.client.withConnection { connection in
            try await self.requireMember(caller, of: thread, on: connection)
            let counted = try await MessageRows.loadCounted(
                """
                SELECT \(unescaped: MessageRows.countedColumns) FROM messages m
                WHERE m.thread_id = \(thread) AND m.seq < \(before) ORDER BY m.seq DESC LIMIT \(limit + 1)
                """, on: connection, logger: self.logger)
            let fitting = PageBytes.fitting(counted.prefix(limit)) { PageBytes.of($0.message) + $0.reactionBytes }
            var messages = try await MessageRows.withReactions(
                counted.prefix(fitting).map(\.message), on: connection, logger: self.logger)
            // Measured again: a message from before the bound on emoji may have more than counted.
            messages = Array(messages.prefix(PageBytes.fitting(messages, size: PageBytes.of)))
            let hasMore = counted.count > messages.count
            return Page(
                items: messages, nextCursor: hasMore ? messages.last.map { Cursor.encode(beforeSeq: $0.seq, in: thread) } : nil)
        }
    }

    private static func pageSize(_ limit: Int) throws -> Int {
        guard (1...maximumPageSize).contains(limit) else {
            throw ServiceError.invalidArgument("limit must be an integer from 1 to \(maximumPageSize)")
        }
        return limit
    }
}
