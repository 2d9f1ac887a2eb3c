import Foundation
import MessengerContracts
import MessengerServiceKit
import PostgresNIO

extension Conversations {
    /// `create_conversation`: a DM with exactly one other user (the same pair gets the same
    /// thread back, with no new event) or a GROUP of 2...256 members with a title.
    func createConversation(
        _ request: CreateConversationRequest, actor: UUID?, requestID: UUID, deadline: ContinuousClock.Instant?
    ) async throws -> ThreadEnvelope {
        let caller = try Self.caller(actor)
        // A set, not a search of the list so far: that was quadratic in the ids sent, and a
        // request of 16,000 ids held messaging's core for seconds.
        var seen: Set<UUID> = [caller]
        let others = request.memberIds.map(\.uuid).filter { seen.insert($0).inserted }
        let title: String?
        switch request.type {
        case .dm:
            // As for a group: the caller and repeats are dropped, so `[bob, bob]` and
            // `[bob, me]` name the one other user too.
            guard others.count == 1 else {
                throw ServiceError.invalidArgument("memberIds of a DM must name exactly one other user")
            }
            title = nil
        case .group:
            title = try self.rules.title(request.title)
            guard (2...self.rules.maximumGroupSize).contains(others.count + 1) else {
                throw ServiceError.invalidArgument(
                    "memberIds: a group has 2 to \(self.rules.maximumGroupSize) members, the creator included")
            }
        }
        let unknown = try await self.users.unknown(others, before: deadline)
        guard unknown.isEmpty else {
            // A few are enough to act on; 255 made a 10 KB error.
            let named = unknown.map { EntityID($0).description }.sorted()
            let more = named.count > 3 ? " and \(named.count - 3) more" : ""
            throw ServiceError.invalidArgument("memberIds: no such user \(Array(named.prefix(3)))\(more)")
        }

        let thread = ChatThread(
            id: .make(), type: request.type, title: title, createdBy: EntityID(caller),
            // The order `members(of:)` reads them back in: the owner, then by id.
            memberIds: ([caller] + others.sorted { $0.lowercasedText < $1.lowercasedText }).map(EntityID.init),
            createdAt: .nowInWholeMilliseconds())
        let dmKey = request.type == .dm ? Self.dmKey(caller, others[0]) : nil
        let created = try await self.write(once: requestID) { connection -> ChatThread? in
            let inserted = try await connection.query(
                """
                INSERT INTO threads (id, type, title, created_by, created_at, dm_key, last_activity_at)
                VALUES (\(thread.id.uuid), \(thread.type.rawValue), \(title), \(caller), \(thread.createdAt), \(dmKey), \(thread.createdAt))
                ON CONFLICT (dm_key) DO NOTHING RETURNING 1
                """, logger: self.logger)
            var isNew = false
            for try await _ in inserted.decode(Int.self) { isNew = true }
            guard isNew else { return nil }
            let memberIDs = thread.memberIds.map(\.uuid)
            try await connection.query(
                """
                INSERT INTO thread_members (thread_id, user_id, role, joined_at)
                SELECT \(thread.id.uuid), member, CASE WHEN member = \(caller) THEN 'owner' ELSE 'member' END, \(thread.createdAt)
                FROM unnest(\(memberIDs)::uuid[]) AS member
                """, logger: self.logger)
            try await self.record(
                MessagingMessage.threadCreated, name: "THREAD_CREATED", thread: thread.id.uuid, recipients: memberIDs,
                data: ThreadEnvelope(thread: thread), actor: caller, on: connection)
            // A group committed after its caller was answered `unavailable` would be made again
            // by the retry (a DM is the pair's one thread however often it is asked for). A copy
            // delivered again has its deadline passed: unless its first run committed (then
            // ``write(once:_:)`` answers what that run did), it makes no group.
            if request.type == .group { try CommitDeadline.ensureTimeLeft(before: deadline) }
            return thread
        }
        if let created { return ThreadEnvelope(thread: created) }
        // The DM already exists (possibly created a moment ago by the other user).
        guard let dmKey, let existing = try await self.thread(dmKey: dmKey) else {
            throw ServiceError.internal("the DM vanished")
        }
        return ThreadEnvelope(thread: existing)
    }

    /// The caller's fellow members of a thread (the caller included), for ephemeral events.
    func threadMembers(_ request: ThreadReference, actor: UUID?) async throws -> ThreadMembers {
        let caller = try Self.caller(actor)
        return try await self.client.withConnection { connection in
            try await self.requireMember(caller, of: request.threadId.uuid, on: connection)
            return ThreadMembers(memberIds: try await self.members(of: request.threadId.uuid, on: connection).map(EntityID.init))
        }
    }

    /// The one key of the DM between two users, whichever of them asks.
    static func dmKey(_ a: UUID, _ b: UUID) -> String {
        let (low, high) = a.lowercasedText < b.lowercasedText ? (a, b) : (b, a)
        return "\(low.lowercasedText):\(high.lowercasedText)"
    }

    private func thread(dmKey: String) async throws -> ChatThread? {
        try await self.client.withConnection { connection in
            let rows = try await connection.query(
                "SELECT id, title, created_by, created_at FROM threads WHERE dm_key = \(dmKey)", logger: self.logger)
            for try await (id, title, createdBy, createdAt) in rows.decode((UUID, String?, UUID, Date).self) {
                let members = try await self.members(of: id, on: connection)
                return ChatThread(
                    id: EntityID(id), type: .dm, title: title, createdBy: EntityID(createdBy),
                    memberIds: members.map(EntityID.init), createdAt: createdAt)
            }
            return nil
        }
    }
}
