import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import PostgresNIO
import Synchronization

/// The commands that committed, each under its request's envelope id, with what it answered:
/// a request that comes again (delivered again after a replica or connection was lost before
/// its ack, or published again after the publisher lost its confirm) is answered from here and
/// not run a second time.
///
/// Run again, an edit could undo a later one (A, then B, then A's copy: every client shows A),
/// a reaction removed since could come back, and a group could be created twice; until the
/// forty-fourth session that was so (a review). Seen marks (they only move forward), deletes
/// and attachments are the same when run again and are not recorded here; a DM is recorded
/// like a group (its copy finds the pair's thread either way).
enum HandledRequests {
    /// How long a command's record is kept: far longer than a request waits in its queue, and
    /// than a publisher that lost its connection takes to publish it again.
    static let retention: Duration = .seconds(3600)

    /// A copy of the request committed first.
    struct AlreadyHandled: Error {}

    /// Claims `request` at the start of its command's transaction: false when a copy of it
    /// committed, before or while this one waited for the copy's claim. Two copies at once
    /// run one after the other, so the second never runs its command (nor answers an error for
    /// a command its copy carried out).
    static func claim(_ request: UUID, on connection: PostgresConnection, logger: Logger) async throws -> Bool {
        let rows = try await connection.query(
            """
            INSERT INTO handled_requests (id, reply) VALUES (\(request), ''::bytea)
            ON CONFLICT (id) DO NOTHING RETURNING 1
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    /// Records the `reply` of the claimed `request`, in its command's transaction.
    static func record<Reply: Encodable>(
        _ request: UUID, reply: Reply, on connection: PostgresConnection, logger: Logger
    ) async throws {
        try await connection.query(
            "UPDATE handled_requests SET reply = \(try MessengerJSON.encode(reply)) WHERE id = \(request)", logger: logger)
    }

    /// What `request` answered when it committed, if it did.
    static func reply<Reply: Decodable>(
        of request: UUID, as type: Reply.Type, on connection: PostgresConnection, logger: Logger
    ) async throws -> Reply? {
        let rows = try await connection.query("SELECT reply FROM handled_requests WHERE id = \(request)", logger: logger)
        for try await reply in rows.decode(ByteBuffer.self) {
            return try MessengerJSON.decode(Reply.self, from: Data(reply.readableBytesView))
        }
        return nil
    }

    /// What `request` answered, if its transaction committed although its `COMMIT` went
    /// unanswered (the connection was lost: a restart, a failover, the network); nil if it did
    /// not commit, or that cannot be known within 2 s.
    ///
    /// The look claims the request in a transaction it then rolls back: a claim waits for a
    /// commit still under way on the lost connection, where a plain read would not see it yet.
    /// The pool may hand out another connection the cut closed, so the look is tried a few
    /// times (as a refresh's rotation is, in auth).
    static func committedReply<Reply: Codable & Sendable>(
        of request: UUID, as type: Reply.Type, in database: Database, logger: Logger
    ) async -> Reply? {
        let end = ContinuousClock.now + .seconds(2)
        do {
            return try await Database.lookingUpLostCommit(for: .seconds(2)) {
                // Its own deadline, not the request's, which may have passed while the commit ran:
                // the look would then get no connection that is not free at once.
                try await RequestDeadline.$current.withValue(end) {
                    try await database.transaction(logger: logger) { connection -> Reply? in
                        guard try await Self.claim(request, on: connection, logger: logger) else {
                            return try await Self.reply(of: request, as: Reply.self, on: connection, logger: logger)
                        }
                        throw NotCommitted()  // rolls the claim back
                    }
                }
            }
        } catch {
            return nil  // not committed (``NotCommitted``), or it cannot be known
        }
    }

    /// The look of ``committedReply(of:as:in:logger:)`` claimed the request: it never committed.
    private struct NotCommitted: Error {}

    /// Set once a command's transaction body has run: what fails from then on is its `COMMIT`,
    /// whose answer a lost connection may have taken after PostgreSQL carried it out.
    final class CommitAsked: Sendable {
        private let asked = Atomic(false)
        var isSet: Bool { self.asked.load(ordering: .acquiring) }
        func set() { self.asked.store(true, ordering: .releasing) }
    }

    /// Deletes the records older than ``retention``; how many went.
    static func prune(on database: Database, logger: Logger) async throws -> Int {
        let seconds = Double(Self.retention.components.seconds)
        let rows = try await database.write(
            """
            WITH gone AS (DELETE FROM handled_requests WHERE handled_at < now() - make_interval(secs => \(seconds)) RETURNING 1)
            SELECT count(*) FROM gone
            """, logger: logger)
        for try await removed in rows.decode(Int.self) { return removed }
        return 0
    }
}
