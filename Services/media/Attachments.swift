import Crypto
import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import NIOPosix
import PostgresNIO

/// What the media service does: stores uploads as unbound attachments of their owner, binds
/// them to the owner's messages (messaging records `ATTACHMENT_ADDED`), and removes uploads
/// never bound and the files of deleted messages.
struct Attachments: Sendable {
    let client: Database
    /// Where new uploads go.
    let store: any MediaStore
    /// Every store a row may name (`storage`), for deleting what an earlier configuration stored.
    let stores: [String: any MediaStore]
    let rpc: RPCClient
    let maximumUpload: Int
    /// What a user's unbound uploads may hold in all (``MediaSettings/unboundBytesPerUser``).
    let unboundBytesPerUser: Int64
    /// `after_store`: the process dies once a file is stored, before its row is written.
    let faults: FaultPoints
    let logger: Logger

    private static let columns =
        "id, owner_id, type, content_type, size_bytes, file_name, width, height, storage, storage_key, url, message_id, created_at"
    private typealias Row = (UUID, UUID, String, String, Int64, String, Int?, Int?, String, String, String, UUID?, Date)
    /// A ``Row`` and whether the upload is marked for removal.
    private typealias MarkedRow = (
        UUID, UUID, String, String, Int64, String, Int?, Int?, String, String, String, UUID?, Date, Bool
    )

    /// ``columns`` of the table named `alias` in a query.
    private static func columns(_ alias: String) -> String {
        Self.columns.split(separator: ", ").map { "\(alias).\($0)" }.joined(separator: ", ")
    }

    private static func resource(_ row: Row) -> Attachment {
        Attachment(
            id: EntityID(row.0), messageId: row.11.map(EntityID.init), type: row.2, url: row.10, fileName: row.5,
            contentType: row.3, sizeBytes: row.4, width: row.6, height: row.7, createdAt: row.12)
    }

    /// Validates (size, type from the bytes), stores, and records an unbound attachment. Past
    /// `deadline` (the caller stopped waiting, and heard `unavailable`) a stored file is deleted
    /// again and nothing is recorded.
    ///
    /// Where the file goes is recorded first (`uploads_in_progress`), and the row that finishes
    /// the upload takes that record's place in one statement: a file whose upload crashed or
    /// failed after it was stored is deleted by the clean-up (until the forty-fourth session it
    /// stayed in the store for good, on Cloudinary at the account's cost). A record the clean-up
    /// claimed first (an upload under way for longer than an unbound upload's lifetime) leaves the
    /// upload `unavailable` and its file deleted.
    func upload(_ request: UploadRequest, actor: UUID?, deadline: ContinuousClock.Instant?) async throws
        -> AttachmentEnvelope
    {
        guard let owner = actor else { throw ServiceError.unauthorized() }
        guard request.data.count <= self.maximumUpload else {
            throw ServiceError(.payloadTooLarge, "the file is larger than \(self.maximumUpload) bytes")
        }
        guard !request.data.isEmpty else { throw ServiceError.invalidArgument("file: the file is empty") }
        // Off the cooperative pool: the sniffer reads a text file whole, and hashing 25 MiB
        // takes tens of milliseconds (the forty-eighth session).
        let data = request.data
        let checked: (media: SniffedMedia, digest: Data)? = try await NIOThreadPool.singleton.runIfActive {
            guard let media = MediaSniffer.sniff(data) else { return nil }
            return (media, Data(SHA256.hash(data: data)))
        }
        guard let (media, digest) = checked else {
            throw ServiceError.invalidArgument("file: this type of file is not accepted")
        }
        // A request delivered again (its first delivery's media crashed) has its deadline passed:
        // its caller may be gone, so nothing is stored for it.
        if let deadline, ContinuousClock.now >= deadline {
            throw ServiceError.unavailable("the upload waited longer than its caller; send it again")
        }
        try await self.ensureRoom(for: Int64(request.data.count), of: owner)
        let fileName = MediaSniffer.sanitizeFileName(request.fileName)
        let id = EntityID.make()
        let planned = self.store.plan(fileName: fileName, media: media)
        try await self.client.write(
            """
            INSERT INTO uploads_in_progress (id, storage, storage_key, type)
            VALUES (\(id.uuid), \(planned.storage), \(planned.key), \(media.type))
            """, logger: self.logger)
        // A failure from here on leaves the record: the store may have the file all the same (a
        // remote store's answer lost), and the clean-up deletes it either way.
        let stored = try await self.store.store(request.data, as: planned, fileName: fileName, media: media, deadline: deadline)
        self.faults.crash(at: "after_store")
        if let deadline, ContinuousClock.now >= deadline {
            await self.abandon(id, stored: stored, type: media.type)
            throw ServiceError.unavailable("the upload took longer than its caller waited; send it again")
        }
        let attachment = Attachment(
            id: id, messageId: nil, type: media.type, url: stored.url, fileName: fileName, contentType: media.contentType,
            sizeBytes: Int64(request.data.count), width: media.width, height: media.height, createdAt: .nowInWholeMilliseconds())
        let recorded: Bool
        do {
            let rows = try await self.client.write(
                """
                WITH finished AS (DELETE FROM uploads_in_progress WHERE id = \(id.uuid) AND claimed_at IS NULL RETURNING id)
                INSERT INTO attachments (id, owner_id, type, content_type, size_bytes, file_name, width, height, storage, storage_key, url, created_at, content_sha256)
                SELECT id, \(owner), \(media.type), \(media.contentType), \(attachment.sizeBytes), \(fileName),
                       \(media.width), \(media.height), \(stored.storage), \(stored.key), \(stored.url), \(attachment.createdAt),
                       \(digest)
                FROM finished
                RETURNING id
                """, logger: self.logger)
            var count = 0
            for try await _ in rows { count += 1 }
            recorded = count == 1
        } catch {
            // Unavailable, the write may have committed (its confirmation lost with the
            // connection): the file stays, either the attachment's or, with the record of the
            // upload in progress still there, the clean-up's to delete. Until the fifty-sixth
            // session it was deleted, and a committed attachment lost its file (a review).
            if !Database.isUnavailable(error) { await self.abandon(id, stored: stored, type: media.type) }
            throw error
        }
        guard recorded else {
            await self.abandon(id, stored: stored, type: media.type)
            throw ServiceError.unavailable("the upload took longer than its record was kept; send it again")
        }
        return AttachmentEnvelope(attachment: attachment)
    }

    /// Throws `rate_limited` when `bytes` more would take `owner`'s unbound uploads past
    /// ``unboundBytesPerUser``: without a bound, one account could fill the disk or the
    /// Cloudinary account with uploads it never binds, each kept a day (review). Uploads under
    /// way beside this one are not counted: a user has at most two at once per gateway.
    private func ensureRoom(for bytes: Int64, of owner: UUID) async throws {
        let rows = try await self.client.query(
            """
            SELECT coalesce(sum(size_bytes), 0)::bigint FROM attachments
            WHERE owner_id = \(owner) AND message_id IS NULL AND removal_marked_at IS NULL
            """, logger: self.logger)
        var held: Int64 = 0
        for try await total in rows.decode(Int64.self) { held = total }
        guard held + bytes <= self.unboundBytesPerUser else {
            throw ServiceError.rateLimited(
                "your uploads not attached to a message hold \(held) bytes, and at most \(self.unboundBytesPerUser) may be; "
                    + "attach them, or wait for them to expire", retryAfter: 60)
        }
    }

    /// Deletes the file of an upload that will not be recorded, then the record of its place;
    /// what fails is left to the clean-up.
    private func abandon(_ id: EntityID, stored: StoredFile, type: String) async {
        do {
            try await self.store.delete(key: stored.key, media: type, deadline: nil)
            try await self.client.write("DELETE FROM uploads_in_progress WHERE id = \(id.uuid)", logger: self.logger)
        } catch {
            self.logger.warning(
                "deleting the file of an upload that failed did not work; the clean-up will",
                metadata: ["attachment_id": "\(id)", "error": "\(LoggedError(error))"])
        }
    }

    /// `add_attachments`: the caller's own uploads, bound to the caller's message. An upload
    /// of someone else is `forbidden`, one bound to another message `conflict`; messaging checks
    /// the message (author only) and records the event.
    ///
    /// An upload of a file the message has already (the same bytes, name and type, attached by
    /// the caller) is not bound: the answer gives the attachment the message has, and the upload
    /// is discarded. That is most often a client's retry of `add_attachments` with files whose
    /// answer it lost: the files travel again, and until the forty-seventh session the message
    /// got each of them twice. Binds to one message take turns (``reserve(_:for:owner:)``), so
    /// two such commands at the same moment bind the file once (until the forty-ninth session
    /// both could).
    func addAttachments(_ request: AddAttachmentsRequest, actor: UUID?) async throws -> AttachmentList {
        guard let caller = actor else { throw ServiceError.unauthorized() }
        let listed = try Self.uploadIDs(request.attachmentIds)
        let messageID = request.messageId.uuid
        let reservation = try await self.reserve(listed, for: messageID, owner: caller)
        let sent = reservation.attachments.map(\.id.uuid)
        if let deadline = RequestDeadline.current, deadline <= .now {
            // The caller stopped waiting while the uploads were reserved (a bind lock waited
            // for, a slow database): messaging is not asked (the RPC client would refuse the
            // call before sending it), and the uploads go back as after a refusal.
            await self.giveBack(sent, from: request.messageId)
            throw ServiceError.unavailable("the request's caller stopped waiting")
        }
        do {
            let answer = try await self.record(
                reservation.attachments, on: request.messageId, by: caller, repeats: reservation.repeats)
            await self.settle(sent, on: messageID)
            return answer
        } catch let refusal as ServiceError where refusal.code.isRefusal {
            // Messaging refused (not the author, no such message, the message's limit): nothing
            // of it was recorded.
            await self.giveBack(sent, from: request.messageId)
            throw refusal
        }
        // Any other failure (a timeout, a crash) may come after messaging committed: the uploads
        // stay reserved for this message, and the client's retry (messaging's attach is
        // idempotent) completes it. At worst an upload stays reserved and is never cleaned up.
    }

    /// Gives back uploads reserved for a message that messaging did not record them on. The
    /// client hears why even if that fails: they stay reserved, as after a timeout. Not bound
    /// by the request's deadline, which may have passed: the pool's lease limit bounds it.
    private func giveBack(_ uploads: [UUID], from message: EntityID) async {
        do {
            try await RequestDeadline.$current.withValue(nil) { try await self.release(uploads, from: message.uuid) }
        } catch {
            self.logger.warning(
                "giving back uploads after an attach that was not recorded failed",
                metadata: ["message_id": "\(message)", "error": "\(LoggedError(error))"])
        }
    }

    /// What ``reserve(_:for:owner:)`` did with the uploads an `add_attachments` listed.
    private struct Reservation: Sendable {
        /// The attachments for messaging to record, in the order listed: a repeat's attachment
        /// in place of the upload.
        var attachments: [Attachment]
        /// The uploads found repeated, each with the attachment the message has (to discard).
        var repeats: [UUID: Attachment]
    }

    /// Reserves the caller's uploads `listed` for `message` before messaging records them, so
    /// that there is no moment at which messaging shows an upload that media takes for unbound
    /// (and would delete once its lifetime ends), and finds the repeats among them.
    ///
    /// One transaction, holding a lock on `message` (an advisory lock, as the message's row is
    /// messaging's): a bind to the same message waits for this one's commit, then finds the files
    /// it bound as repeats. Without the lock two commands with the same file, each reading the
    /// message's attachments before the other's bind, both bound it. Nothing else runs under the
    /// lock: messaging's call comes after the commit.
    ///
    /// All or none: an upload that is missing is `not_found`, someone else's `forbidden`, one
    /// bound to another message `conflict` (a deleted message's too: until the forty-ninth
    /// session its marked uploads were `not_found`), one otherwise marked for removal (discarded,
    /// or past its lifetime) `not_found`, and then nothing is reserved.
    private func reserve(_ listed: [UUID], for message: UUID, owner: UUID) async throws -> Reservation {
        try await self.client.transaction(logger: self.logger) { connection in
            try await self.lockBinds(of: message, on: connection)
            let repeats = try await self.repeats(among: listed, of: message, owner: owner, on: connection)
            let ids = listed.filter { repeats[$0] == nil }
            // Nothing new: messaging still checks the message is the caller's, and answers.
            guard !ids.isEmpty else {
                let attachments = listed.compactMap { repeats[$0] }
                try await self.markPending(attachments.map(\.id.uuid), for: message, on: connection)
                return Reservation(attachments: attachments, repeats: repeats)
            }
            let rows = try await connection.query(
                """
                SELECT \(unescaped: Self.columns), removal_marked_at IS NOT NULL FROM attachments
                WHERE id = ANY(\(ids))
                FOR UPDATE
                """, logger: self.logger)
            var found: [UUID: (owner: UUID, attachment: Attachment, marked: Bool)] = [:]
            for try await row in rows.decode(MarkedRow.self) {
                let columns = (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11, row.12)
                found[row.0] = (row.1, Self.resource(columns), row.13)
            }
            var attachments: [Attachment] = []
            for id in listed {
                if let repeated = repeats[id] {
                    attachments.append(repeated)
                    continue
                }
                guard let entry = found[id] else { throw ServiceError.notFound("no such attachment \(EntityID(id))") }
                guard entry.owner == owner else { throw ServiceError.forbidden("you can only attach your own uploads") }
                if let bound = entry.attachment.messageId, bound.uuid != message {
                    throw ServiceError.conflict("attachment \(EntityID(id)) is bound to another message")
                }
                // Discarded, or past its lifetime unbound: its file is being removed.
                guard !entry.marked else { throw ServiceError.notFound("no such attachment \(EntityID(id))") }
                attachments.append(entry.attachment)
            }
            try await self.markPending(attachments.map(\.id.uuid), for: message, on: connection)
            return Reservation(attachments: attachments, repeats: repeats)
        }
    }

    /// Binds `ids` to `message` (those not bound yet become `unsettled`: messaging has not
    /// recorded them) and counts this command's messaging call as pending on each, inside
    /// ``reserve(_:for:owner:)``'s transaction.
    private func markPending(_ ids: [UUID], for message: UUID, on connection: PostgresConnection) async throws {
        guard !ids.isEmpty else { return }
        try await connection.query(
            """
            UPDATE attachments SET message_id = \(message), bound_at = coalesce(bound_at, now()),
                unsettled = unsettled OR message_id IS NULL, attach_pending = attach_pending + 1
            WHERE id = ANY(\(ids))
            """, logger: self.logger)
    }

    /// Messaging recorded `ids` on `message`: they are settled, and this command's call is no
    /// longer pending on them. What fails leaves them bound, which they are.
    private func settle(_ ids: [UUID], on message: UUID) async {
        do {
            try await self.client.write(
                """
                UPDATE attachments SET unsettled = false, attach_pending = greatest(attach_pending - 1, 0)
                WHERE id = ANY(\(ids)) AND message_id = \(message)
                """, logger: self.logger)
        } catch {
            self.logger.warning(
                "settling bound uploads failed", metadata: ["message_id": "\(message)", "error": "\(LoggedError(error))"])
        }
    }

    /// Takes the lock that orders binds to `message` and their releases, until the transaction
    /// on `connection` ends.
    private func lockBinds(of message: UUID, on connection: PostgresConnection) async throws {
        try await connection.query(
            "SELECT pg_advisory_xact_lock(\(Self.bindLockClass), \(Self.bindLockKey(message)))", logger: self.logger)
    }

    /// The class of the advisory locks that order binds to one message
    /// (``reserve(_:for:owner:)``): the first key of PostgreSQL's two-key form.
    static let bindLockClass: Int32 = 0x6D65_6469  // "medi"

    /// The second key of a message's bind lock: 32 bits of its id. Two messages that share them
    /// only take turns.
    static func bindLockKey(_ message: UUID) -> Int32 {
        let bytes = message.uuid
        return Int32(bitPattern: UInt32(bytes.12) << 24 | UInt32(bytes.13) << 16 | UInt32(bytes.14) << 8 | UInt32(bytes.15))
    }

    /// Has messaging record `attachments` on `message` (it checks the caller is the author, and
    /// records the event for those it did not have), then discards the repeated uploads.
    private func record(
        _ attachments: [Attachment], on message: EntityID, by caller: UUID, repeats: [UUID: Attachment]
    ) async throws -> AttachmentList {
        let answer = try await self.rpc.call(
            MessagingMessage.attach, to: .messaging, payload: AttachRequest(messageId: message, attachments: attachments),
            replyAs: AttachmentList.self, actor: caller)
        await self.discardRepeats(Array(repeats.keys), of: caller)
        return answer
    }

    /// The caller's unbound uploads among `ids` whose file `message` has already (bound by the
    /// caller, with the same SHA-256, name and type), each with that attachment: a different
    /// one for each upload (the earliest bound first), and none the request lists itself, so
    /// that an answer never names an attachment twice.
    private func repeats(
        among ids: [UUID], of message: UUID, owner: UUID, on connection: PostgresConnection
    ) async throws -> [UUID: Attachment] {
        let rows = try await connection.query(
            """
            SELECT \(unescaped: Self.columns("a")), u.id
            FROM attachments u JOIN attachments a
              ON a.message_id = \(message) AND a.owner_id = u.owner_id AND a.content_sha256 = u.content_sha256
             AND a.file_name = u.file_name AND a.content_type = u.content_type AND a.removal_marked_at IS NULL
            WHERE u.id = ANY(\(ids)) AND u.owner_id = \(owner) AND u.message_id IS NULL AND u.removal_marked_at IS NULL
            ORDER BY a.bound_at, a.id
            """, logger: self.logger)
        var candidates: [UUID: [Attachment]] = [:]
        for try await row in rows.decode(
            (UUID, UUID, String, String, Int64, String, Int?, Int?, String, String, String, UUID?, Date, UUID).self)
        {
            candidates[row.13, default: []].append(
                Self.resource((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10, row.11, row.12)))
        }
        var taken = Set(ids)
        var found: [UUID: Attachment] = [:]
        for id in ids {
            guard let attachment = candidates[id]?.first(where: { !taken.contains($0.id.uuid) }) else { continue }
            taken.insert(attachment.id.uuid)
            found[id] = attachment
        }
        return found
    }

    /// Marks the uploads an `add_attachments` found repeated (``repeats(among:of:owner:on:)``) for
    /// removal; the clean-up deletes their files (deleting them here, from Cloudinary, could
    /// take longer than the caller waits for the answer). What fails goes with the clean-up of
    /// unbound uploads.
    private func discardRepeats(_ ids: [UUID], of owner: UUID) async {
        guard !ids.isEmpty else { return }
        do {
            try await self.client.write(
                """
                UPDATE attachments SET removal_marked_at = now()
                WHERE id = ANY(\(ids)) AND owner_id = \(owner) AND message_id IS NULL AND removal_marked_at IS NULL
                """, logger: self.logger)
        } catch {
            self.logger.warning("marking repeated uploads for removal failed", metadata: ["error": "\(LoggedError(error))"])
        }
    }

    /// Deletes the caller's uploads among `request`'s that are still unbound (marked, then
    /// removed like any other; one a store refuses now, or one not reached by `deadline`, goes
    /// with the next clean-up). Uploads of others and bound ones are left as they are.
    func discardUploads(
        _ request: DiscardUploadsRequest, actor: UUID?, deadline: ContinuousClock.Instant?
    ) async throws -> EmptyPayload {
        guard let caller = actor else { throw ServiceError.unauthorized() }
        let ids = try Self.uploadIDs(request.attachmentIds)
        let marked = try await self.client.write(
            """
            UPDATE attachments SET removal_marked_at = now()
            WHERE id = ANY(\(ids)) AND owner_id = \(caller) AND message_id IS NULL AND removal_marked_at IS NULL
            RETURNING id
            """, logger: self.logger)
        var discarded: [UUID] = []
        for try await id in marked.decode(UUID.self) { discarded.append(id) }
        if !discarded.isEmpty { _ = try await self.removeMarked(ids: discarded, deadline: deadline) }
        return EmptyPayload()
    }

    /// The uploads a request names, each once and in order: 1 to 20 of them. It stops at the
    /// 21st: a list of 25,000 ids, each looked for among those before it, held a core for
    /// seconds before it was refused (a review in the forty-ninth session).
    static func uploadIDs(_ listed: [EntityID]) throws -> [UUID] {
        let refusal = ServiceError.invalidArgument("attachmentIds must list 1 to 20 uploads")
        var ids: [UUID] = []
        var seen = Set<UUID>()
        for id in listed.lazy.map(\.uuid) where seen.insert(id).inserted {
            guard ids.count < 20 else { throw refusal }
            ids.append(id)
        }
        guard !ids.isEmpty else { throw refusal }
        return ids
    }

    /// Messaging refused a command that sent `ids` for `message`: its call is no longer pending
    /// on them, and those that no other command's call holds and that messaging never recorded
    /// are unbound again. Under the message's bind lock, so that no reservation relies on one
    /// meanwhile. Until the forty-ninth session a refusal gave back every upload the command
    /// had bound, one a concurrent command had since been answered with (as a repeat, or listed
    /// again) and messaging had recorded for that one included: the message kept an
    /// attachment whose file the clean-up then deleted (a review). An upload marked for removal
    /// meanwhile (the message was deleted) stays with its message, so that the deletion's own
    /// removal (``removeMarked(of:ids:deadline:)`` of its messages) takes it, not the next pass.
    private func release(_ ids: [UUID], from message: UUID) async throws {
        guard !ids.isEmpty else { return }
        try await self.client.transaction(logger: self.logger) { connection in
            try await self.lockBinds(of: message, on: connection)
            try await connection.query(
                """
                UPDATE attachments SET attach_pending = greatest(attach_pending - 1, 0),
                    message_id = CASE WHEN unsettled AND attach_pending <= 1 AND removal_marked_at IS NULL
                        THEN NULL ELSE message_id END,
                    bound_at = CASE WHEN unsettled AND attach_pending <= 1 AND removal_marked_at IS NULL
                        THEN NULL ELSE bound_at END,
                    unsettled = unsettled AND attach_pending > 1
                WHERE id = ANY(\(ids)) AND message_id = \(message)
                """, logger: self.logger)
        }
    }

    /// The clean-up's pass: marks uploads never bound to a message and older than `lifetime`
    /// for removal, then removes every marked file (``removeMarked(of:ids:deadline:)``), a deleted
    /// message's that a store refused before included, and the abandoned uploads' files, for
    /// `budget` at most (the marked files half of it at most). Marked, an upload can no longer
    /// be bound: a bind and the clean-up never both take it (the clean-up deleted the file first
    /// and checked the row after, so a bind in between kept a row whose file was gone).
    ///
    /// The budget is for a store that hangs: each delete then waits out its attempts (three of a
    /// minute with Cloudinary's defaults), and until the fifty-sixth session a pass went through
    /// a whole batch of 500 that way, about a day, while no expired upload was marked and no
    /// abandoned upload's file deleted (a review). What is left waits for the next pass.
    func cleanUp(unboundOlderThan lifetime: Duration, budget: Duration = Attachments.cleanUpBudget) async throws -> Int {
        let seconds = Double(lifetime.components.seconds)
        try await self.client.write(
            """
            UPDATE attachments SET removal_marked_at = now()
            WHERE message_id IS NULL AND removal_marked_at IS NULL
              AND created_at < now() - make_interval(secs => \(seconds))
            """, logger: self.logger)
        // Half the budget at most for the marked files, so that abandoned uploads get their turn
        // behind a long backlog of them (the diff review).
        let started = ContinuousClock.now
        let marked = try await self.removeMarked(deadline: started + budget / 2)
        return try await marked + self.removeAbandonedUploads(olderThan: lifetime, deadline: started + budget)
    }

    /// How long a clean-up pass removes files, at most.
    static let cleanUpBudget: Duration = .seconds(600)

    /// How long a claim of the clean-up on an abandoned upload's record holds: past it, a pass
    /// that died (or still runs: Cloudinary's deletes may take minutes each) is taken over, and a
    /// file may be deleted twice, which is harmless.
    static let uploadClaimLease: Duration = .seconds(6 * 3600)

    /// Deletes the files of uploads still in progress after `age`, which crashed or failed
    /// before their row was written; a file the store does not have is not an error. Each
    /// record is claimed (`claimed_at`) before its file is deleted, and deleted after it: an
    /// upload that finishes meanwhile finds its record claimed and deletes its file itself
    /// (deleting the file first let such an upload record a row whose file went next: the
    /// forty-fourth session's review of its own diff), and a pass that dies part way leaves its
    /// records claimed, taken again after `lease` (until the forty-fifth session the batch's
    /// records were deleted before their files, and a pass that died lost them). A file the
    /// store refuses keeps its record claimed, so it is tried again after `lease`, and the pass
    /// goes on; ``refusalsInARow`` refusals in a row look like the store is down, and end the
    /// pass, with the claims of the batch's records not tried given back. Until the fifty-fourth
    /// session the first refusal ended the pass and gave its record back: the next pass began
    /// with that record again, so one file that could never be deleted (a folder restored with
    /// other ownership, a 4xx from Cloudinary) stopped the clean-up of every other (a review).
    /// Records of a store this instance has no configuration for are left to an instance that
    /// has it.
    func removeAbandonedUploads(
        olderThan age: Duration, lease: Duration = Self.uploadClaimLease, deadline: ContinuousClock.Instant? = nil
    ) async throws -> Int {
        let seconds = Double(age.components.seconds)
        let leaseSeconds = Double(lease.components.seconds)
        let claim = UUID()
        var removed = 0
        while true {
            if let deadline, deadline <= .now { return removed }
            let rows = try await self.client.write(
                """
                UPDATE uploads_in_progress SET claimed_at = now(), claim = \(claim) WHERE id IN (
                    SELECT id FROM uploads_in_progress
                    WHERE started_at < now() - make_interval(secs => \(seconds)) AND storage = ANY(\(Array(self.stores.keys)))
                      AND (claimed_at IS NULL OR claimed_at <= now() - make_interval(secs => \(leaseSeconds)))
                    ORDER BY started_at, id LIMIT \(Self.removalBatch) FOR UPDATE SKIP LOCKED
                ) RETURNING id, storage, storage_key, type
                """, logger: self.logger)
            var taken: [(UUID, String, String, String)] = []
            for try await row in rows.decode((UUID, String, String, String).self) { taken.append(row) }
            var refusedInARow = 0
            for (index, (id, storage, key, type)) in taken.enumerated() {
                // Past the deadline, the claims of the records not tried are given back, and the
                // pass ends.
                if let deadline, deadline <= .now {
                    try await self.giveBackClaims(of: taken[index...].map(\.0), claim: claim)
                    return removed
                }
                do {
                    try await self.stores[storage]?.delete(key: key, media: type, deadline: deadline)
                } catch {
                    // Cut short by the deadline: given back with the rest, not held for the lease.
                    if let deadline, deadline <= .now {
                        try await self.giveBackClaims(of: taken[index...].map(\.0), claim: claim)
                        return removed
                    }
                    self.logger.warning(
                        "removing the file of an abandoned upload failed; tried again once its claim expires",
                        metadata: ["attachment_id": "\(id)", "error": "\(LoggedError(error))"])
                    refusedInARow += 1
                    guard refusedInARow < Self.refusalsInARow else {
                        try await self.giveBackClaims(of: taken[(index + 1)...].map(\.0), claim: claim)
                        return removed
                    }
                    continue
                }
                refusedInARow = 0
                try await self.client.write("DELETE FROM uploads_in_progress WHERE id = \(id)", logger: self.logger)
                removed += 1
            }
            guard taken.count == Self.removalBatch else { return removed }
        }
    }

    /// Gives back this pass's claims on the abandoned uploads' records `ids`.
    private func giveBackClaims(of ids: [UUID], claim: UUID) async throws {
        guard !ids.isEmpty else { return }
        try await self.client.write(
            """
            UPDATE uploads_in_progress SET claimed_at = NULL, claim = NULL
            WHERE id = ANY(\(ids)) AND claim = \(claim)
            """, logger: self.logger)
    }

    /// Marks the attachments of `messages`, which messaging deleted, for removal. Idempotent: a
    /// redelivered deletion marks nothing new.
    func markMessagesDeleted(_ messages: [UUID]) async throws {
        try await self.client.write(
            """
            UPDATE attachments SET removal_marked_at = now()
            WHERE message_id = ANY(\(messages)) AND removal_marked_at IS NULL
            """, logger: self.logger)
    }

    /// How many marked files one statement reads at a time.
    private static let removalBatch = 500

    /// Files a store refuses in a row before a clean-up pass takes it for down, and ends.
    static let refusalsInARow = 3

    /// Deletes the files of attachments marked for removal (a deleted message's, an expired or a
    /// discarded upload's), then their rows, oldest marks first: those of `messages` or `ids`,
    /// or all of them (the clean-up's pass, for what a store refused before; only those of
    /// `messages` after a deletion, so that a store that is down does not make every deletion
    /// retry every file left). Goes on batch after batch until none is left, a whole batch was
    /// refused (a store that is down), or `deadline` (a waiting caller's, a pass's budget) passed; the rest stay
    /// marked for the clean-up. A refused file's mark is moved to now, behind the others: until
    /// the fifty-fourth session it kept its place, and a batch's worth of files that could
    /// never be deleted, first in line, stopped every later pass before the others (a review).
    func removeMarked(
        of messages: [UUID]? = nil, ids: [UUID]? = nil, deadline: ContinuousClock.Instant? = nil
    ) async throws -> Int {
        var removed = 0
        // Only the rows marked before the pass began: a refused row, marked again now, waits
        // for the next pass (read again in this one, with new rows coming in beside it, the pass
        // could go round the refused files for good; the diff review).
        var passStart = Date.distantPast
        for try await now in try await self.client.query("SELECT clock_timestamp()", logger: self.logger).decode(Date.self) {
            passStart = now
        }
        while true {
            let rows = try await self.client.query(
                """
                SELECT id, storage, storage_key, type FROM attachments
                WHERE removal_marked_at < \(passStart) AND storage = ANY(\(Array(self.stores.keys)))
                  AND (\(messages)::uuid[] IS NULL OR message_id = ANY(\(messages)::uuid[]))
                  AND (\(ids)::uuid[] IS NULL OR id = ANY(\(ids)::uuid[]))
                ORDER BY removal_marked_at, id LIMIT \(Self.removalBatch)
                """, logger: self.logger)
            let batch = try await self.removeStored(rows, deadline: deadline)
            removed += batch.removed
            guard batch.found == Self.removalBatch, batch.removed > 0 else { return removed }
            if let deadline, deadline <= .now { return removed }
        }
    }

    /// Deletes each marked row's file from the store the row names, then the row; returns how
    /// many rows were read and how many went. A file that cannot be deleted now is logged, its
    /// mark moved to now, and tried again on a later run; the others go on. Rows kept in a store this instance has no
    /// configuration for (Cloudinary ones on an instance without an account) are left to an
    /// instance that has it, and never stand in the way of the others.
    private func removeStored(
        _ rows: Database.Rows, deadline: ContinuousClock.Instant?
    ) async throws -> (found: Int, removed: Int) {
        var found: [(UUID, String, String, String)] = []
        for try await row in rows.decode((UUID, String, String, String).self) { found.append(row) }
        var removed = 0
        for (id, storage, key, type) in found {
            if let deadline, deadline <= .now { break }
            guard let store = self.stores[storage] else { continue }
            do {
                try await store.delete(key: key, media: type, deadline: deadline)
            } catch {
                self.logger.warning(
                    "removing a stored file failed; tried again later",
                    metadata: ["attachment_id": "\(id)", "error": "\(LoggedError(error))"])
                try await self.client.write(
                    "UPDATE attachments SET removal_marked_at = now() WHERE id = \(id)", logger: self.logger)
                continue
            }
            try await self.client.write("DELETE FROM attachments WHERE id = \(id)", logger: self.logger)
            removed += 1
        }
        return (found.count, removed)
    }
}
