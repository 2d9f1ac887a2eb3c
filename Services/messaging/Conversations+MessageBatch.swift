import Foundation
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

extension Conversations {
    /// What became of one command of a batch.
    private enum Slot {
        case failed(ServiceError)
        /// Written before (a retry): the original's id.
        case existing(UUID)
        /// The same command earlier in this batch.
        case sameAs(Int)
        case created(ChatMessage, RawJSON)
    }

    /// `create_message` for a batch of commands (bodies and client ids already validated), in one
    /// transaction. The rules: members only; `replyToId` in the same thread; each thread's row is
    /// locked (in id order) so concurrent senders get the next `seq` with no duplicate and no
    /// gap; `(sender, thread, clientMessageId)` makes a retry return the original and record
    /// nothing. Returns one result per command, in order; throws only when the batch as a whole
    /// failed.
    func createMessages(
        _ commands: [(request: CreateMessageRequest, caller: UUID)]
    ) async throws -> [Result<RawJSON, ServiceError>] {
        // Retries are rare, so the batch is first written without looking for them: the unique
        // (thread, sender, clientMessageId) index refuses a retry's row, the transaction rolls
        // back, and the batch is written again with the lookup. That saves a statement per
        // batch, which on a quiet system is a statement per message.
        do {
            return try await self.createMessages(commands, lookingForRetries: false)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            return try await self.createMessages(commands, lookingForRetries: true)
        }
    }

    private func createMessages(
        _ commands: [(request: CreateMessageRequest, caller: UUID)], lookingForRetries: Bool
    ) async throws -> [Result<RawJSON, ServiceError>] {
        let threadIDs = Array(Set(commands.map(\.request.threadId.uuid)))
        let slots = try await self.write { connection -> [Slot] in
            // The thread rows, locked in id order (no deadlock between concurrent batches): from
            // here on, this transaction alone appends to these threads.
            var lastSeq: [UUID: Int64] = [:]
            var now = Date.distantPast
            var members: [UUID: [UUID]] = [:]
            for try await row in try await connection.execute(
                MessageStatements.LockThreads(threads: threadIDs), logger: self.logger)
            {
                let (id, seq, at, member) = try row.decode((UUID, Int64, Date, UUID?).self)
                lastSeq[id] = seq
                now = max(now, at)
                if let member { members[id, default: []].append(member) }
            }

            // Retries of messages already written.
            var existing: [Int: UUID] = [:]
            if lookingForRetries {
                let retries = MessageStatements.Retries(
                    threads: commands.map(\.request.threadId.uuid), senders: commands.map(\.caller),
                    clientIDs: commands.map(\.request.clientMessageId))
                for try await row in try await connection.execute(retries, logger: self.logger) {
                    let (id, ordinal) = try row.decode((UUID, Int64).self)
                    existing[Int(ordinal) - 1] = id
                }
            }

            var replyThread: [UUID: UUID] = [:]
            let replyIDs = commands.compactMap(\.request.replyToId?.uuid)
            if !replyIDs.isEmpty {
                let rows = try await connection.query(
                    "SELECT id, thread_id FROM messages WHERE id = ANY(\(replyIDs))", logger: self.logger)
                for try await (id, thread) in rows.decode((UUID, UUID).self) { replyThread[id] = thread }
            }

            var slots: [Slot] = []
            var firstOfKey: [String: Int] = [:]
            for (index, (request, caller)) in commands.enumerated() {
                let thread = request.threadId.uuid
                let key = "\(thread)|\(caller)|\(request.clientMessageId)"
                guard let seq = lastSeq[thread] else {
                    slots.append(.failed(.notFound("no such thread")))
                    continue
                }
                guard members[thread]?.contains(caller) == true else {
                    slots.append(.failed(.forbidden("you are not a member of this thread")))
                    continue
                }
                if let id = existing[index] {
                    slots.append(.existing(id))
                } else if let first = firstOfKey[key] {
                    slots.append(.sameAs(first))
                } else if let replyTo = request.replyToId?.uuid, replyThread[replyTo] != thread {
                    slots.append(.failed(.invalidArgument("replyToId must be a message of the same thread")))
                } else {
                    lastSeq[thread] = seq + 1
                    firstOfKey[key] = index
                    let message = ChatMessage(
                        id: .make(), threadId: request.threadId, senderId: EntityID(caller),
                        clientMessageId: request.clientMessageId, seq: seq + 1, body: request.body,
                        replyToId: request.replyToId, attachments: [], reactions: [], createdAt: now, editedAt: nil,
                        deletedAt: nil)
                    // Encoded once, for both the reply and the event.
                    slots.append(.created(message, message.envelopeJSON))
                }
            }

            let createdSlots = slots.compactMap { slot -> (ChatMessage, RawJSON)? in
                if case .created(let message, let json) = slot { return (message, json) } else { return nil }
            }
            let created = createdSlots.map(\.0)
            guard !created.isEmpty else { return slots }
            let touched = Array(Set(created.map(\.threadId.uuid)))
            let occurredAt = Date()
            let events = createdSlots.map { message, json in
                let id = UUID.v7()
                let event = DomainEvent(
                    name: "MESSAGE_CREATED", threadId: message.threadId,
                    recipients: (members[message.threadId.uuid] ?? []).map(EntityID.init), data: json)
                return Outbox.EncodedEvent(
                    id: id, type: MessagingMessage.messageCreated,
                    body: event.envelopeJSON(
                        type: MessagingMessage.messageCreated, id: id, occurredAt: occurredAt, actorId: message.senderId.uuid))
            }
            _ = try await connection.execute(
                MessageStatements.Write(
                    ids: created.map(\.id.uuid), threads: created.map(\.threadId.uuid), seqs: created.map(\.seq),
                    senders: created.map(\.senderId.uuid), clientIDs: created.map(\.clientMessageId), bodies: created.map(\.body),
                    replyTos: created.map { $0.replyToId?.description ?? "" }, createdAt: now, touchedThreads: touched,
                    lastSeqs: touched.map { lastSeq[$0] ?? 0 }, events: events),
                logger: self.logger)
            return slots
        }

        var originals: [UUID: ChatMessage] = [:]
        let existingIDs = slots.compactMap { slot -> UUID? in
            if case .existing(let id) = slot { return id } else { return nil }
        }
        if !existingIDs.isEmpty {
            let found = try await self.client.withConnection { connection in
                try await MessageRows.load(
                    "SELECT \(unescaped: MessageRows.columns) FROM messages m WHERE m.id = ANY(\(existingIDs))", on: connection,
                    logger: self.logger)
            }
            for message in found { originals[message.id.uuid] = message }
        }
        func result(_ slot: Slot) -> Result<RawJSON, ServiceError> {
            switch slot {
            case .failed(let error): return .failure(error)
            case .created(_, let json): return .success(json)
            case .existing(let id):
                guard let json = originals[id]?.envelopeJSON else {
                    return .failure(.internal())
                }
                return .success(json)
            case .sameAs(let index): return result(slots[index])
            }
        }
        return slots.map(result)
    }
}
