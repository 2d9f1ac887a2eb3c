import Foundation
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// One `create_message` command of a batch: what was asked, by whom, the correlation id of the
/// request that asked it (its event carries it on), and when its caller stops waiting
/// (``RPCContext/deadline``; nil for a request without one).
struct MessageCommand: Sendable {
    var request: CreateMessageRequest
    var caller: UUID
    var correlationID: String?
    var deadline: ContinuousClock.Instant? = nil

    /// Whether its caller gave up at `now`: the gateway has answered it `unavailable`, and the
    /// client's retry (the same `clientMessageId`) writes it.
    func isAbandoned(at now: ContinuousClock.Instant) -> Bool {
        guard let deadline = self.deadline else { return false }
        return now >= deadline
    }

    /// The answer to a command whose caller gave up (the gateway answered it already).
    static let callerGaveUp = ServiceError.unavailable(
        "the request's deadline passed before its message could be written; send it again", retryAfter: 1)

    /// The answer to a command whose thread another session holds locked
    /// (``LockedThreads``).
    static let threadLocked = ServiceError.unavailable(
        "the thread is held by another writer; send the message again", retryAfter: 1)

    /// The answer to a command of a caller who is not a member of its thread.
    static let notAMember = ServiceError.forbidden("you are not a member of this thread")

    /// The answer to a reply whose target another session holds locked (a frozen delete, edit or
    /// reaction of it; ``LockedThreads``).
    static let replyTargetLocked = ServiceError.unavailable(
        "the message replied to is held by another writer; send the message again", retryAfter: 1)

    /// The rows the command needs locked: its thread's, and its reply target's.
    var rowsLocked: [UUID] {
        [self.request.threadId.uuid] + (self.request.replyToId.map { [$0.uuid] } ?? [])
    }
}

extension Conversations {
    /// What became of one command of a batch.
    private enum Slot {
        case failed(ServiceError)
        /// Written before (a retry): the original's id.
        case existing(UUID)
        /// The same command earlier in this batch.
        case sameAs(Int)
        case created(ChatMessage, RawJSON, correlationID: String?)
    }

    /// A batch decided: each command's slot, the statement that writes the new messages and their
    /// events (nil when there are none), and the batch's threads as they are once it committed.
    private struct Plan {
        var slots: [Slot]
        var write: MessageStatements.Write?
        var threads: [UUID: KnownThreads.Thread]
    }

    /// `create_message` for a batch of commands (bodies and client ids already validated). The
    /// rules: members only; `replyToId` in the same thread; `seq` per thread with no duplicate
    /// and no gap, even with concurrent senders and replicas; `(sender, thread, clientMessageId)`
    /// makes a retry return the original and record nothing. Returns one result per command, in
    /// order; throws only when the batch as a whole failed.
    ///
    /// A batch is first tried as one statement with no transaction, planned from what this
    /// replica knows of its threads (``KnownThreads``): one round trip instead of four. When a
    /// thread is not known, a command replies to a message, or the unique indexes refuse a row
    /// (another replica wrote to the thread since, or a command is a retry), the batch is written
    /// in a transaction that locks its threads and reads them.
    ///
    /// A thread row that another session holds locked longer than `lock_timeout` (half the RPC
    /// timeout: a replica froze inside its batch's transaction, say) must not fail the batch's
    /// other threads, nor hold them while PostgreSQL waits to end the holder's session. So when
    /// a batch gives up on a lock, it is written again at once around the held threads
    /// (``createMessagesAroundHeldThreads(_:)``), and so are the later batches of a thread found
    /// held (``LockedThreads``) until one locks it.
    func createMessages(
        _ commands: [MessageCommand]
    ) async throws -> [Result<RawJSON, ServiceError>] {
        if self.lockedThreads.containsAny(of: commands.flatMap(\.rowsLocked)) {
            return try await self.createMessagesAroundHeldThreads(commands)
        }
        do {
            if let results = try await self.createMessagesFromKnownThreads(commands) {
                return results
            }
            // Retries are rare, so the batch is first written without looking for them: the unique
            // (thread, sender, clientMessageId) index refuses a retry's row, the transaction rolls
            // back, and the batch is written again with the lookup. That saves a statement per
            // batch, which on a quiet system is a statement per message.
            do {
                return try await self.createMessagesUnderLocks(commands, lookingForRetries: false).results
            } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
                return try await self.createMessagesUnderLocks(commands, lookingForRetries: true).results
            }
        } catch  where Database.isLockTimeout(error) {
            self.logger.warning(
                "a message batch gave up waiting for a lock; writing it again around the held threads",
                metadata: ["messages": "\(commands.count)"])
            return try await self.createMessagesAroundHeldThreads(commands)
        }
    }

    /// How long a row skipped as held is given before the commands that need it are tried again.
    static let heldRowWait: Duration = .milliseconds(200)

    /// Writes the commands whose rows (thread, reply target) no other session holds, taking
    /// them with `SKIP LOCKED`. A command whose row was found held before (``LockedThreads``) is
    /// answered `unavailable` at once ("held by another writer"; the client sends it again). The
    /// commands whose rows were skipped for the first time are tried once more, together, after
    /// ``heldRowWait``: a row a healthy writer held for a moment (another replica's batch, a
    /// delete) is free by then, and only rows still held are remembered.
    ///
    /// Until the forty-sixth session each newly skipped thread was tried alone with a 200 ms lock
    /// wait, one after the other, while the answers of the messages already written waited (past
    /// the callers' deadline with a dozen threads); an error other than a lock timeout in one of
    /// those tries failed the whole batch, written or not; a held reply target was waited for
    /// twice and then failed the batch; and a skip refreshed a remembered thread's memory.
    private func createMessagesAroundHeldThreads(
        _ commands: [MessageCommand]
    ) async throws -> [Result<RawJSON, ServiceError>] {
        let rows = Set(commands.flatMap(\.rowsLocked))
        let remembered = rows.filter { self.lockedThreads.containsAny(of: [$0]) }
        var (results, held) = try await self.createMessagesUnderLocks(
            commands, lookingForRetries: true, skippingLocked: true)
        let newlyHeld = held.subtracting(remembered)
        let now = ContinuousClock.now
        let again = commands.indices.filter { index in
            !commands[index].isAbandoned(at: now + Self.heldRowWait)
                && !newlyHeld.isDisjoint(with: commands[index].rowsLocked)
        }
        guard !again.isEmpty else {
            self.lockedThreads.found(locked: held)
            return results
        }
        try? await Task.sleep(for: Self.heldRowWait)
        do {
            let second = try await self.createMessagesUnderLocks(
                again.map { commands[$0] }, lookingForRetries: true, skippingLocked: true)
            for (index, result) in zip(again, second.results) { results[index] = result }
            held = held.subtracting(newlyHeld).union(second.held)
        } catch {
            // The first pass's messages are written and stay answered; these keep their
            // `unavailable`, and their clients send them again.
            self.logger.warning(
                "writing again the messages whose rows were held failed",
                metadata: ["messages": "\(again.count)", "error": "\(LoggedError(error))"])
        }
        self.lockedThreads.found(locked: held)
        return results
    }

    /// The batch as one statement (atomic on its own), or nil when the locked way must write it.
    private func createMessagesFromKnownThreads(
        _ commands: [MessageCommand]
    ) async throws -> [Result<RawJSON, ServiceError>]? {
        // A reply takes the locked way: its target is read under a share lock that a delete
        // of it waits for (``MessageStatements/ReplyTargets``), which this statement cannot take.
        guard !commands.contains(where: { $0.request.replyToId != nil }),
            let known = self.knownThreads.lookup(commands.map(\.request.threadId.uuid))
        else { return nil }
        let plan = self.plan(commands, threads: known, existing: [:], replyTargets: [:])
        if let write = plan.write {
            do {
                try await self.client.withConnection { connection in
                    // Read to the end: the row sequence is handed over before the statement has run, and
                    // its error comes after (postgres-nio's command-tag overload traps on this one).
                    for try await _ in try await connection.execute(write, logger: self.logger) {}
                    // Told to the senders as saved: committed first (the statement's own rows
                    // come before its commit).
                    try await connection.confirmCommitted(logger: self.logger)
                }
            } catch {
                self.knownThreads.forget(known.keys)
                if let error = error as? PSQLError, error.serverInfo?[.sqlState] == "23505" { return nil }
                throw error
            }
            self.committed()
            self.knownThreads.wrote(plan.threads)
        }
        return Self.results(plan.slots, originals: [:])
    }

    /// `skippingLocked`: thread rows and reply targets another session holds locked are not
    /// waited for; their commands fail as ``MessageCommand/threadLocked`` or
    /// ``MessageCommand/replyTargetLocked``, and their ids are returned as `held`.
    private func createMessagesUnderLocks(
        _ commands: [MessageCommand], lookingForRetries: Bool, skippingLocked: Bool = false
    ) async throws -> (results: [Result<RawJSON, ServiceError>], held: Set<UUID>) {
        let threadIDs = Array(Set(commands.map(\.request.threadId.uuid)))
        let (plan, locked, free) = try await self.write { connection -> (Plan, Set<UUID>, Set<UUID>) in
            // The thread rows, locked in id order (no deadlock between concurrent batches): from
            // here on, this transaction alone appends to these threads.
            var threads: [UUID: KnownThreads.Thread] = [:]
            let rows =
                skippingLocked
                ? try await connection.execute(MessageStatements.LockFreeThreads(threads: threadIDs), logger: self.logger)
                : try await connection.execute(MessageStatements.LockThreads(threads: threadIDs), logger: self.logger)
            for try await row in rows {
                let (id, seq, activity, member) = try row.decode((UUID, Int64, Date, UUID?).self)
                var thread = threads[id] ?? KnownThreads.Thread(members: [], lastSeq: seq, lastActivity: activity)
                if let member { thread.members.append(member) }
                threads[id] = thread
            }

            // Threads skipped: those that exist are locked by another session. Their members are
            // read too, so that a caller who is not one is told so rather than to retry.
            var locked: Set<UUID> = []
            var heldMembers: [UUID: Set<UUID>] = [:]
            let skipped = threadIDs.filter { threads[$0] == nil }
            if skippingLocked, !skipped.isEmpty {
                for try await row in try await connection.execute(
                    MessageStatements.ExistingThreads(threads: skipped), logger: self.logger)
                {
                    let (id, members) = try row.decode((UUID, [UUID]?).self)
                    locked.insert(id)
                    heldMembers[id] = Set(members ?? [])
                }
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

            // The messages replied to, share-locked: a delete of one waits for this batch, or
            // this batch for the delete, and then sees the message deleted.
            var replyTargets: [UUID: ReplyTarget] = [:]
            let replyIDs = Array(Set(commands.compactMap(\.request.replyToId?.uuid)))
            if !replyIDs.isEmpty {
                let rows =
                    skippingLocked
                    ? try await connection.execute(MessageStatements.FreeReplyTargets(ids: replyIDs), logger: self.logger)
                    : try await connection.execute(MessageStatements.ReplyTargets(ids: replyIDs), logger: self.logger)
                for try await row in rows {
                    let (id, thread, deleted) = try row.decode((UUID, UUID, Bool).self)
                    replyTargets[id] = ReplyTarget(thread: thread, deleted: deleted)
                }
            }
            // Reply targets skipped: those that exist are locked by another session.
            let skippedTargets = replyIDs.filter { replyTargets[$0] == nil }
            if skippingLocked, !skippedTargets.isEmpty {
                for try await row in try await connection.execute(
                    MessageStatements.ExistingMessages(ids: skippedTargets), logger: self.logger)
                {
                    locked.insert(try row.decode(UUID.self))
                }
            }

            let plan = self.plan(
                commands, threads: threads, locked: locked, heldMembers: heldMembers, existing: existing,
                replyTargets: replyTargets)
            if let write = plan.write {
                // Read to the end: the row sequence is handed over before the statement has run, and
                // its error comes after (postgres-nio's command-tag overload traps on this one).
                for try await _ in try await connection.execute(write, logger: self.logger) {}
            }
            return (plan, locked, Set(threads.keys).union(replyTargets.keys))
        }
        self.knownThreads.wrote(plan.threads)
        if skippingLocked { self.lockedThreads.found(free: free) }

        var originals: [UUID: ChatMessage] = [:]
        let existingIDs = plan.slots.compactMap { slot -> UUID? in
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
        return (Self.results(plan.slots, originals: originals), locked)
    }

    /// The message a new one replies to: it must be in the same thread, and not deleted (a reply
    /// would quote a tombstone), as it is once the batch holds its share lock.
    struct ReplyTarget {
        var thread: UUID
        var deleted: Bool
    }

    /// Decides each command from its thread's last seq and members (`threads`: the threads that
    /// exist), the retries found (`existing`, by command index) and the messages replied to.
    /// The new messages are dated by this replica's clock, but never before their own thread's
    /// last activity, so `createdAt` does not go backwards within a thread as `seq` grows. The
    /// time is a whole millisecond (rounded up), as the JSON carries it, so that the reply and
    /// the stored row say the same. Until the fifty-fourth session the whole batch took the
    /// latest activity of all its threads: a thread dated ahead (by a replica whose clock ran
    /// fast) dated every other thread of the batch as far ahead, and they spread it on to the
    /// threads of later batches (a review).
    /// What makes two `create_message` commands one message, compared as the table's unique
    /// index compares it: byte for byte. Swift's `==` on strings takes canonically equivalent
    /// text as equal (NFC "é" and NFD "e" + U+0301): until the fortieth session two commands of
    /// one batch with such ids became one message, and the second's own body was acknowledged
    /// and never stored (an outside reviewer lost 12 in 15 rounds).
    private struct IdempotencyKey: Hashable {
        var thread: UUID
        var sender: UUID
        var clientMessageID: [UInt8]
    }

    private func plan(
        _ commands: [MessageCommand], threads: [UUID: KnownThreads.Thread], locked: Set<UUID> = [],
        heldMembers: [UUID: Set<UUID>] = [:],
        existing: [Int: UUID], replyTargets: [UUID: ReplyTarget]
    ) -> Plan {
        let clock = Date()
        let instant = ContinuousClock.now
        var threads = threads
        var slots: [Slot] = []
        var firstOfKey: [IdempotencyKey: Int] = [:]
        for (index, command) in commands.enumerated() {
            let (request, caller) = (command.request, command.caller)
            let thread = request.threadId.uuid
            let key = IdempotencyKey(thread: thread, sender: caller, clientMessageID: Array(request.clientMessageId.utf8))
            // Not written once its caller gave up (the batch waited for a lock, say): the
            // client's retry writes it.
            if command.isAbandoned(at: instant) {
                slots.append(.failed(MessageCommand.callerGaveUp))
                continue
            }
            if locked.contains(thread) {
                // A caller who is not a member is told so, not to retry (until the fifty-second
                // session, `unavailable` until the lock went; a review).
                let member = heldMembers[thread]?.contains(caller) ?? true
                slots.append(.failed(member ? MessageCommand.threadLocked : MessageCommand.notAMember))
                continue
            }
            if let replyTo = request.replyToId?.uuid, locked.contains(replyTo) {
                slots.append(.failed(MessageCommand.replyTargetLocked))
                continue
            }
            guard let known = threads[thread] else {
                slots.append(.failed(.notFound("no such thread")))
                continue
            }
            guard known.members.contains(caller) else {
                slots.append(.failed(MessageCommand.notAMember))
                continue
            }
            if let id = existing[index] {
                slots.append(.existing(id))
            } else if let first = firstOfKey[key] {
                slots.append(.sameAs(first))
            } else if let replyTo = request.replyToId?.uuid, replyTargets[replyTo]?.thread != thread {
                slots.append(.failed(.invalidArgument("replyToId must be a message of the same thread")))
            } else if let replyTo = request.replyToId?.uuid, replyTargets[replyTo]?.deleted == true {
                slots.append(.failed(.invalidArgument("replyToId is a deleted message, which cannot be replied to")))
            } else {
                let now = Self.messageTime(clock, notBefore: known.lastActivity)
                threads[thread] = KnownThreads.Thread(members: known.members, lastSeq: known.lastSeq + 1, lastActivity: now)
                firstOfKey[key] = index
                let message = ChatMessage(
                    id: .make(), threadId: request.threadId, senderId: EntityID(caller),
                    clientMessageId: request.clientMessageId, seq: known.lastSeq + 1, body: request.body,
                    replyToId: request.replyToId, attachments: [], reactions: [], createdAt: now, editedAt: nil,
                    deletedAt: nil)
                // Encoded once, for both the reply and the event.
                slots.append(.created(message, message.envelopeJSON, correlationID: command.correlationID))
            }
        }

        let created = slots.compactMap { slot -> (message: ChatMessage, json: RawJSON, correlationID: String?)? in
            if case .created(let message, let json, let correlationID) = slot { return (message, json, correlationID) }
            return nil
        }
        guard !created.isEmpty else { return Plan(slots: slots, write: nil, threads: threads) }
        let messages = created.map(\.message)
        let touched = Array(Set(messages.map(\.threadId.uuid)))
        let occurredAt = Date()
        let events = created.map { message, json, correlationID in
            let id = UUID.v7()
            let event = DomainEvent(
                name: "MESSAGE_CREATED", threadId: message.threadId,
                recipients: (threads[message.threadId.uuid]?.members ?? []).map(EntityID.init), data: json)
            return Outbox.EncodedEvent(
                id: id, type: MessagingMessage.messageCreated,
                body: event.envelopeJSON(
                    type: MessagingMessage.messageCreated, id: id, correlationId: correlationID, occurredAt: occurredAt,
                    actorId: message.senderId.uuid))
        }
        let write = MessageStatements.Write(
            ids: messages.map(\.id.uuid), threads: messages.map(\.threadId.uuid), seqs: messages.map(\.seq),
            senders: messages.map(\.senderId.uuid), clientIDs: messages.map(\.clientMessageId), bodies: messages.map(\.body),
            replyTos: messages.map { $0.replyToId?.description ?? "" }, createdAt: messages.map(\.createdAt),
            touchedThreads: touched, lastSeqs: touched.map { threads[$0]?.lastSeq ?? 0 },
            lastActivities: touched.map { threads[$0]?.lastActivity ?? clock }, events: events)
        return Plan(slots: slots, write: write, threads: threads)
    }

    /// A new message's time: `clock`, or its thread's last activity when that is later, in a
    /// whole millisecond rounded up.
    static func messageTime(_ clock: Date, notBefore lastActivity: Date) -> Date {
        max(clock, lastActivity).inWholeMilliseconds
    }

    /// Each command's answer; `originals` holds the messages the retries return.
    private static func results(_ slots: [Slot], originals: [UUID: ChatMessage]) -> [Result<RawJSON, ServiceError>] {
        func result(_ slot: Slot) -> Result<RawJSON, ServiceError> {
            switch slot {
            case .failed(let error): return .failure(error)
            case .created(_, let json, _): return .success(json)
            case .existing(let id):
                guard let json = originals[id]?.envelopeJSON else { return .failure(.internal()) }
                return .success(json)
            case .sameAs(let index): return result(slots[index])
            }
        }
        return slots.map(result)
    }
}
