import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// What the messaging service does: threads, messages, reactions and seen marks, each command
/// one transaction that also writes its domain event to the outbox. Every query is scoped to the
/// caller's memberships; the caller comes from the request's verified actor, never a payload.
///
/// The commands live in `Conversations+Threads.swift`, `+Messages`, `+Reactions`, `+Queries`.
struct Conversations: Sendable {
    let client: Database
    let users: UserDirectory
    let outbox: OutboxSignal
    /// `after_commit`: dies between a command's commit and the outbox relay's publish.
    let faults: FaultPoints
    let logger: Logger
    /// The contract's limits on what users write, as configured.
    var rules = MessagingRules()
    /// What this replica last wrote to each thread, for `create_message` batches.
    let knownThreads = KnownThreads()
    /// Threads another session held locked past `lock_timeout`, for `create_message` batches.
    let lockedThreads = LockedThreads()

    /// The authenticated caller.
    static func caller(_ actor: UUID?) throws -> UUID {
        guard let actor else { throw ServiceError.unauthorized() }
        return actor
    }

    /// Runs `body` in a transaction and wakes the outbox relay after the commit.
    func write<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        let result = try await self.client.transaction(logger: self.logger, body)
        self.committed()
        return result
    }

    /// Runs `body` in a transaction, at most once for `request` (its envelope id): the first
    /// time it claims the id and records its result with the commit (``HandledRequests``), and a
    /// copy of the request gets that result without running `body`.
    ///
    /// A transaction whose `COMMIT` went unanswered (the connection lost) is looked up by its
    /// claim, and one that committed is answered as usual. Until the fifty-fourth session it was
    /// answered 503 "retry", and the caller's retry, a new request, made a second group (a
    /// review; `GroupLostCommitTests`). Only a failure after the body ran is looked up: one
    /// before (no connection in time, a lock timeout, a connection lost mid-body) cannot have
    /// committed, and a look for each would hold the request longer in an outage or overload.
    func write<Result: Codable & Sendable>(
        once request: UUID, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let commitAsked = HandledRequests.CommitAsked()
        do {
            let result = try await self.client.transaction(logger: self.logger) { connection -> Result in
                guard try await HandledRequests.claim(request, on: connection, logger: self.logger) else {
                    throw HandledRequests.AlreadyHandled()
                }
                let result = try await body(connection)
                try await HandledRequests.record(request, reply: result, on: connection, logger: self.logger)
                commitAsked.set()
                return result
            }
            self.committed()
            return result
        } catch is HandledRequests.AlreadyHandled {
            let earlier = try await self.client.withConnection { connection in
                try await HandledRequests.reply(of: request, as: Result.self, on: connection, logger: self.logger)
            }
            guard let earlier else { throw ServiceError.internal() }
            return earlier
        } catch  where commitAsked.isSet && Database.isUnavailable(error) {
            guard
                let committed = await HandledRequests.committedReply(
                    of: request, as: Result.self, in: self.client, logger: self.logger)
            else { throw error }
            self.logger.notice("a command whose commit went unanswered had committed; answered as done")
            self.committed()
            return committed
        }
    }

    /// After a command's commit: the `after_commit` crash point, then the outbox relay's wake-up.
    func committed() {
        self.faults.crash(at: "after_commit")
        self.outbox.wake()
    }

    /// Appends a domain event to the outbox in the current transaction.
    func record<Data: Encodable & Sendable>(
        _ type: MessageType, name: String, thread: UUID, recipients: [UUID], data: Data, actor: UUID,
        on connection: PostgresConnection
    ) async throws {
        let event = DomainEvent(
            name: name, threadId: EntityID(thread), recipients: recipients.map(EntityID.init), data: data)
        try await Outbox.append(Envelope(type: type, actorId: actor, data: event), on: connection, logger: self.logger)
    }

    /// The members of `thread`, in a stable order (owner first); empty when the thread does not
    /// exist.
    func members(of thread: UUID, on connection: PostgresConnection) async throws -> [UUID] {
        let rows = try await connection.query(
            "SELECT user_id FROM thread_members WHERE thread_id = \(thread) ORDER BY role = 'owner' DESC, user_id",
            logger: self.logger)
        var members: [UUID] = []
        for try await id in rows.decode(UUID.self) { members.append(id) }
        return members
    }

    /// Throws unless `user` is a member of `thread`: `not_found` when there is no such thread,
    /// `forbidden` when the caller is not in it.
    func requireMember(_ user: UUID, of thread: UUID, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(
            """
            SELECT EXISTS (SELECT 1 FROM thread_members WHERE thread_id = \(thread) AND user_id = \(user)),
                   EXISTS (SELECT 1 FROM threads WHERE id = \(thread))
            """, logger: self.logger)
        for try await (isMember, exists) in rows.decode((Bool, Bool).self) {
            if isMember { return }
            throw exists ? ServiceError.forbidden("you are not a member of this thread") : ServiceError.notFound("no such thread")
        }
        throw ServiceError.notFound("no such thread")
    }
}
