import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO

/// A domain event as delivery records it.
struct IncomingEvent: Sendable {
    var id: UUID
    var occurredAt: Date
    var actor: UUID?
    var name: String
    var threadID: UUID
    var recipients: [UUID]
    var data: JSONAny

    /// From the envelope of a `messaging.*` domain event; nil when it is not one. Read with the
    /// hand-written parser (``JSONAny/parse(_:)``), field by field, with the checks decoding
    /// `Envelope<DomainEvent<JSONAny>>` made.
    init?(decoding body: Data) {
        guard let envelope = try? JSONAny.parse(body), envelope["type"]?.stringValue != nil,
            let id = envelope["id"]?.stringValue.flatMap({ UUID(text: $0) }),
            let occurredAt = envelope["occurredAt"]?.stringValue.flatMap(Timestamp.parse),
            let event = envelope["data"], let name = event["name"]?.stringValue, ClientEvent.names[name] != nil,
            let threadID = event["threadId"]?.stringValue.flatMap({ UUID(text: $0) }),
            case .array(let recipientValues)? = event["recipients"], let data = event["data"]
        else { return nil }
        let recipients = recipientValues.compactMap { $0.stringValue.flatMap { UUID(text: $0) } }
        guard recipients.count == recipientValues.count else { return nil }
        var actor: UUID?
        if let value = envelope["actorId"], value != .null {
            guard let parsed = value.stringValue.flatMap({ UUID(text: $0) }) else { return nil }
            actor = parsed
        }
        self.init(
            id: id, occurredAt: occurredAt, actor: actor, name: name, threadID: threadID, recipients: recipients, data: data)
    }

    init(id: UUID, occurredAt: Date, actor: UUID?, name: String, threadID: UUID, recipients: [UUID], data: JSONAny) {
        self.id = id
        self.occurredAt = occurredAt
        self.actor = actor
        self.name = name
        self.threadID = threadID
        self.recipients = recipients
        self.data = data
    }
}

/// The per-user event log: records each domain event once, gives every recipient the next seq
/// of their own sequence (gap-free: the seq is taken under the user's row lock in the
/// transaction that stores the delivery), and tracks each delivery PENDING -> DELIVERED -> SEEN.
struct EventLog: Sendable {
    let client: Database
    let retention: Duration
    let logger: Logger
    /// How many seqs one transaction of an ack covers at most (``acknowledge(user:upToSeq:before:sendReceipts:)``).
    var ackChunk: Int64 = 5_000
    /// The events' data a page of ``events(user:afterSeq:limit:includeAcknowledged:acknowledgedSince:acknowledgedAfter:)`` holds, at
    /// most (its first event whatever its size).
    static let maximumPageBytes = 1 << 20

    /// Records `events` in order, atomically. Returns what to push: the new deliveries, and for
    /// an event recorded before (a redelivery from the broker) its still-pending ones.
    ///
    /// The batch is one statement (``EventLogStatements/Record``), on its own when it can be: a
    /// `MESSAGE_SEEN` event also marks deliveries seen, and a `MESSAGES_DELETED` event erases
    /// what its messages' stored events said (``eraseDeletedMessages(_:on:)``); then the
    /// statements share a transaction.
    func record(_ events: [IncomingEvent]) async throws -> [Delivery] {
        var seen = Set<UUID>()
        let events = events.filter { seen.insert($0.id).inserted }  // an event twice in one batch is one event
        guard !events.isEmpty else { return [] }
        return try await self.retryingDeadlocks {
            if events.contains(where: { $0.name == "MESSAGE_SEEN" || $0.name == "MESSAGES_DELETED" }) {
                return try await self.client.transaction(logger: self.logger) { connection in
                    try await self.recordBatch(events, on: connection)
                }
            }
            return try await self.client.withConnection { connection in
                let deliveries = try await self.recordBatch(events, on: connection)
                // Committed at the statement's Sync, after its rows came: pushed and acked
                // before that, a batch whose backend was terminated in between was lost.
                try await connection.confirmCommitted(logger: self.logger)
                return deliveries
            }
        }
    }

    /// Records `events` as ``record(_:)`` does, in a transaction that is then rolled back:
    /// throws what recording them throws, and changes nothing. Tells a database that takes
    /// writes from one that refuses them, without recording a message before those ahead of it.
    func tryRecording(_ events: [IncomingEvent]) async throws {
        var seen = Set<UUID>()
        let events = events.filter { seen.insert($0.id).inserted }
        guard !events.isEmpty else { return }
        do {
            try await self.retryingDeadlocks {
                try await self.client.transaction(logger: self.logger) { connection in
                    _ = try await self.recordBatch(events, on: connection)
                    throw RolledBack()
                }
            }
        } catch is RolledBack {
            return
        }
    }

    /// Ends ``tryRecording(_:)``'s transaction with a rollback.
    private struct RolledBack: Error {}

    /// Runs `body` again (up to three times) when PostgreSQL broke a deadlock or a serialization
    /// conflict by aborting it: both are safe to retry at once.
    private func retryingDeadlocks<Result>(_ body: () async throws -> Result) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await body()
            } catch  where Database.isConflict(error) && attempt < 3 {
                attempt += 1
                self.logger.debug("retrying after a deadlock", metadata: ["attempt": "\(attempt)"])
            }
        }
    }

    /// Records `events` (no id twice) with ``EventLogStatements/Record``, then marks what the
    /// `MESSAGE_SEEN` events among the new ones say was seen, and finds the still-pending
    /// deliveries of the events recorded before.
    private func recordBatch(_ events: [IncomingEvent], on connection: PostgresConnection) async throws -> [Delivery] {
        var recipientEvents: [UUID] = [], recipientUsers: [UUID] = []
        var messages: [String] = [], messageSeqs: [Int64] = [], senders: [String] = []
        for event in events {
            let message = event.data["message"]
            messages.append(
                ((message?["id"] ?? event.data["messageId"])?.stringValue).flatMap { UUID(text: $0) }.map {
                    EntityID($0).description
                } ?? "")
            messageSeqs.append(message?["seq"]?.int64Value ?? -1)
            senders.append(
                (message?["senderId"]?.stringValue).flatMap { UUID(text: $0) }.map { EntityID($0).description } ?? "")
            for user in event.recipients {
                recipientEvents.append(event.id)
                recipientUsers.append(user)
            }
        }
        let texts = events.map(\.data.jsonText)
        let statement = EventLogStatements.Record(
            ids: events.map(\.id), names: events.map(\.name), times: events.map(\.occurredAt),
            texts: texts, threads: events.map(\.threadID), messages: messages, messageSeqs: messageSeqs,
            senders: senders, recipientEvents: recipientEvents, recipientUsers: recipientUsers,
            expires: Date().addingTimeInterval(Double(self.retention.components.seconds)))
        var claimed = Set<UUID>()
        var seqs: [UUID: [(user: UUID, seq: Int64)]] = [:]
        for try await row in try await connection.execute(statement, logger: self.logger) {
            let (event, user, seq) = try row.decode((UUID, UUID?, Int64?).self)
            if let user, let seq {
                seqs[event, default: []].append((user, seq))
            } else {
                claimed.insert(event)
            }
        }

        // The events recorded before (a redelivery): their still-pending deliveries, read in one
        // statement (one per event until the forty-fifth session: a standby taking over 256
        // redelivered receipt batches read thousands of events one round trip at a time).
        let recordedBefore = events.map(\.id).filter { !claimed.contains($0) }
        let redelivered = recordedBefore.isEmpty ? [] : try await self.pending(events: recordedBefore, on: connection)
        // What follows can wait for locks; a batch without it commits at the Record statement.
        let written = ContinuousClock.now
        var deliveries: [Delivery] = []
        for (event, text) in zip(events, texts) {
            guard claimed.contains(event.id) else { continue }
            for (user, seq) in (seqs[event.id] ?? []).sorted(by: { $0.user.lowercasedText < $1.user.lowercasedText }) {
                deliveries.append(
                    Delivery(
                        userID: user, eventID: EntityID(event.id), seq: seq, name: event.name, occurredAt: event.occurredAt,
                        dataJSON: text))
            }
            if event.name == "MESSAGE_SEEN", let seer = event.data["userId"]?.stringValue.flatMap({ UUID(text: $0) }),
                let message = event.data["messageId"]?.stringValue.flatMap({ UUID(text: $0) })
            {
                try await self.markSeen(user: seer, upTo: message, on: connection)
            }
        }
        // Recorded again or not (erasing twice changes nothing), a deletion erases.
        for event in events where event.name == "MESSAGES_DELETED" {
            try await self.eraseDeletedMessages(event, on: connection)
        }
        if !deliveries.isEmpty, ContinuousClock.now - written > Self.restampAfter {
            try await self.stampWritten(deliveries, on: connection)
        }
        return redelivered + deliveries
    }

    /// How long a batch's statements after ``EventLogStatements/Record`` may take before its
    /// deliveries are stamped again (``stampWritten(_:on:)``): well under a gateway's 2 s margin.
    static let restampAfter: Duration = .milliseconds(500)

    /// Sets the new deliveries' `first_attempt_at` again, to now: the statements after
    /// ``EventLogStatements/Record`` in the batch's transaction (``markSeen(user:upTo:on:)``,
    /// ``eraseDeletedMessages(_:on:)``) can wait for rows an ack or another batch holds, and
    /// the deliveries are stored, and pushed, only when the transaction commits after them.
    /// `acknowledgedSince` counts an event from its stamp (see ``EventLogStatements/Record``);
    /// until the fifty-first session a batch that waited there longer than a gateway's margin
    /// had its events passed over by a socket's look for missed pushes.
    private func stampWritten(_ deliveries: [Delivery], on connection: PostgresConnection) async throws {
        self.logger.debug(
            "a batch waited after writing its deliveries; stamping them again", metadata: ["deliveries": "\(deliveries.count)"])
        let users = deliveries.map(\.userID)
        let seqs = deliveries.map(\.seq)
        try await connection.query(
            """
            UPDATE deliveries SET first_attempt_at = clock_timestamp()
            WHERE user_id = ANY(\(users)::uuid[])
              AND (user_id, seq) IN (SELECT * FROM unnest(\(users)::uuid[], \(seqs)::bigint[]))
            """, logger: self.logger)
    }

    /// A soft delete keeps the message's row, not what it said: the stored events that carry
    /// the deleted messages (`MESSAGE_CREATED`, `MESSAGE_UPDATED`, `ATTACHMENT_ADDED`) now carry
    /// them as the thread shows them, body `""`, no attachments or reactions, `deletedAt` the
    /// deletion's time. A device that had not acknowledged them gets that in its replay, its
    /// `sync` and any push again, instead of the deleted text and file URLs for up to the
    /// events' retention. Each keeps its event id and seq.
    private func eraseDeletedMessages(_ deletion: IncomingEvent, on connection: PostgresConnection) async throws {
        guard case .array(let values)? = deletion.data["messageIds"] else { return }
        let messages = values.compactMap { $0.stringValue.flatMap { UUID(text: $0) } }
        guard !messages.isEmpty else { return }
        // The messages' own `deletedAt` (as the thread shows it), or the deletion's time from
        // an event recorded before the thirty-ninth session, which was a millisecond or two off.
        let deletedAt = Timestamp.format(
            deletion.data["deletedAt"]?.stringValue.flatMap(Timestamp.parse) ?? deletion.occurredAt)
        try await connection.query(
            """
            UPDATE events SET data = CASE name
                WHEN 'ATTACHMENT_ADDED' THEN jsonb_set(data::jsonb, '{attachments}', '[]')
                ELSE jsonb_set(jsonb_set(jsonb_set(jsonb_set(data::jsonb,
                    '{message,body}', '""'), '{message,attachments}', '[]'), '{message,reactions}', '[]'),
                    '{message,deletedAt}', to_jsonb(\(deletedAt)::text))
                END::text
            WHERE message_id = ANY(\(messages)) AND name IN ('MESSAGE_CREATED', 'MESSAGE_UPDATED', 'ATTACHMENT_ADDED')
            """, logger: self.logger)
    }

    /// The unacknowledged (no `delivered_at`, seen or not), unexpired deliveries of `events`, in
    /// the order of `events`, then by user.
    func pending(events: [UUID], on connection: PostgresConnection) async throws -> [Delivery] {
        let rows = try await connection.query(
            """
            SELECT d.user_id, d.seq, d.event_id, e.name, e.occurred_at,
                   CASE WHEN lag(d.event_id) OVER w IS DISTINCT FROM d.event_id THEN e.data END
            FROM unnest(\(events)::uuid[]) WITH ORDINALITY AS k(event_id, n)
            JOIN deliveries d ON d.event_id = k.event_id JOIN events e ON e.event_id = d.event_id
            WHERE d.delivered_at IS NULL AND d.expires_at > now()
            WINDOW w AS (ORDER BY k.n, d.user_id)
            ORDER BY k.n, d.user_id
            """, logger: self.logger)
        var deliveries = Deliveries()
        for try await row in rows.decode(Deliveries.Row.self) { try deliveries.append(row) }
        return deliveries.all
    }

    /// Deliveries read in event order, an event's data in its first row only: its other rows
    /// share that text. A retry of a 256-member group's events read each row's copy of the
    /// data (up to 24 KB), 32,768 copies for one check, until the forty-ninth session (a
    /// review).
    struct Deliveries {
        typealias Row = (UUID, Int64, UUID, String, Date, String?)
        private(set) var all: [Delivery] = []

        mutating func append(_ row: Row) throws {
            let (user, seq, event, name, occurredAt, data) = row
            let shared = self.all.last.flatMap { $0.eventID.uuid == event ? $0.dataJSON : nil }
            guard let text = data ?? shared else {
                throw ServiceError(.internal, "a delivery of event \(event) came without its event's data")
            }
            self.all.append(
                Delivery(userID: user, eventID: EntityID(event), seq: seq, name: name, occurredAt: occurredAt, dataJSON: text))
        }
    }

    /// A retry check: the still-pending, unexpired deliveries of `events` (only those of
    /// `users`, when given: a replayed dead letter's; only those a check of `level` tries) get
    /// one more attempt, in one statement. Returns them in event order, then user order.
    func retry(events: [UUID], users: [UUID] = [], level: RetryLevel? = nil) async throws -> [Delivery] {
        guard !events.isEmpty else { return [] }
        return try await self.retryingDeadlocks {
            try await self.retryOnce(EventLogStatements.Retry(events: events, users: users, level: level))
        }
    }

    private func retryOnce(_ statement: EventLogStatements.Retry) async throws -> [Delivery] {
        try await self.client.withConnection { connection in
            var deliveries = Deliveries()
            for try await row in try await connection.execute(statement, logger: self.logger) {
                try deliveries.append(try row.decode(Deliveries.Row.self))
            }
            try await connection.confirmCommitted(logger: self.logger)  // the attempts it counted
            return deliveries.all
        }
    }

    /// `ack_events`: every delivery of `user` up to `upToSeq` (clamped to the user's latest seq)
    /// is DELIVERED. Each message delivered for the first time tells its sender, once per
    /// recipient, with a `MESSAGE_DELIVERED` receipt that `sendReceipts` hands to the event
    /// consumer before the transaction commits, so the one consumer gives every seq (an ack
    /// never locks a sequence row). A receipt's id is derived from the message and the
    /// recipient: an ack retried after a failed commit sends the same receipts again, and the
    /// consumer's inbox drops them. Returns the clamped seq.
    ///
    /// The deliveries are acknowledged ``ackChunk`` seqs at a time, each chunk in its own
    /// transaction, while `deadline` allows; past it the ack is `unavailable`, and its retry goes
    /// on from where it stopped. Until the forty-third session an ack was one transaction
    /// however many deliveries it covered: a user back after days in busy groups could ack
    /// hundreds of thousands at once, which could not end before the deadline, rolled back, and
    /// failed the same way at every retry, holding the rows' locks each time.
    func acknowledge(
        user: UUID, upToSeq: Int64, before deadline: ContinuousClock.Instant? = nil,
        sendReceipts: @escaping @Sendable ([IncomingEvent]) async throws -> Void
    ) async throws -> Int64 {
        guard upToSeq >= 0 else { throw ServiceError.invalidArgument("upToSeq must not be negative") }
        while true {
            // An ack and a batch marking seen messages can update the same delivery rows in
            // different orders; a deadlock aborts one of them, and the chunk is simply run again
            // (its receipts keep their ids, so sending them twice records them once).
            let (acknowledged, target) = try await self.retryingDeadlocks {
                try await self.ack(user: user, upToSeq: upToSeq, sendReceipts: sendReceipts)
            }
            if acknowledged >= target { return acknowledged }
            if let deadline, ContinuousClock.now >= deadline {
                throw ServiceError.unavailable("acknowledging took longer than its caller waited; send it again")
            }
        }
    }

    /// One chunk of an ack: the acknowledged seq after it, and the seq the ack goes to.
    private func ack(
        user: UUID, upToSeq: Int64, sendReceipts: @escaping @Sendable ([IncomingEvent]) async throws -> Void
    ) async throws -> (acknowledged: Int64, target: Int64) {
        try await self.client.transaction(logger: self.logger) { connection in
            // The user's latest seq only grows: clamping to a value read a moment ago is safe.
            // Everything up to the acknowledged seq is DELIVERED already (or SEEN), so only the
            // rows above it are looked at, not the user's whole history.
            var clamped: Int64 = 0
            var target: Int64 = 0
            var receipts: [IncomingEvent] = []
            for try await row in try await connection.execute(
                EventLogStatements.Acknowledge(user: user, seq: upToSeq, chunk: self.ackChunk), logger: self.logger)
            {
                let (seq, goal, thread, message, sender, at) = try row.decode(
                    (Int64, Int64, UUID?, UUID?, UUID?, Date?).self)
                clamped = seq
                target = goal
                guard let thread, let message, let sender, let at else { continue }
                let data = JSONAny.object([
                    "threadId": .string(EntityID(thread).description), "messageId": .string(EntityID(message).description),
                    "userId": .string(EntityID(user).description), "at": .string(Timestamp.format(at)),
                ])
                receipts.append(
                    IncomingEvent(
                        id: .named("MESSAGE_DELIVERED \(message) \(user)", orderedLike: message), occurredAt: at, actor: user,
                        name: "MESSAGE_DELIVERED", threadID: thread, recipients: [sender], data: data))
            }
            // Confirmed by the broker before this transaction commits: a failure rolls the chunk back.
            if !receipts.isEmpty { try await sendReceipts(receipts) }
            return (clamped, target)
        }
    }

    /// `sync` and the replay on connect: the user's unacknowledged, unexpired events after
    /// `afterSeq`, in seq order, and the user's latest seq (one row with no event when the page
    /// is empty). `includeAcknowledged`: the acknowledged ones too (a gateway's gap fill);
    /// with `acknowledgedSince`, only those first pushed at or after it. `acknowledgedAfter`:
    /// the acknowledged ones with a seq above it too (a gateway's replay pages after the first).
    ///
    /// A page holds `limit` events at most, and stops early (with `hasMore`) once their data
    /// passes ``maximumPageBytes``: its first event always goes. Until the forty-third session
    /// only the count bounded a page, and 500 large events (a 4,000-character body escaped, a
    /// message with many reactions) made pages of 12 to 100 MB, which a gateway holds for
    /// each socket it replays to (a review).
    func events(
        user: UUID, afterSeq: Int64, limit: Int, includeAcknowledged: Bool = false, acknowledgedSince: Date? = nil,
        acknowledgedAfter: Int64? = nil
    ) async throws -> SyncReply {
        // The acknowledged events stay in the log until they expire; a gap fill needs them back
        // when another device of the user acknowledged them before this one got them. A bound
        // by seq keeps the page one index range scan, from the later of `afterSeq` and the lower
        // of the bound and the acknowledged seq.
        let acknowledgedBound: Int64 = includeAcknowledged && acknowledgedSince == nil ? 0 : acknowledgedAfter ?? Int64.max
        // Without a moment, none of the acknowledged ones past the bound above qualify by it.
        let storedSince = includeAcknowledged ? acknowledgedSince : nil
        let rows = try await self.client.query(
            """
            WITH latest AS (SELECT coalesce((SELECT last_seq FROM user_sequences WHERE user_id = \(user)), 0) AS seq),
            page AS (
                SELECT d.seq, d.event_id, e.name, e.occurred_at, e.data FROM deliveries d JOIN events e ON e.event_id = d.event_id
                WHERE d.user_id = \(user) AND d.expires_at > now() AND d.seq > \(afterSeq)
                  AND (d.seq > least(\(acknowledgedBound), coalesce((SELECT acked_seq FROM user_acks WHERE user_id = \(user)), 0))
                       OR d.first_attempt_at >= \(storedSince))
                ORDER BY d.seq LIMIT \(limit + 1)
            )
            SELECT latest.seq, page.seq, page.event_id, page.name, page.occurred_at, page.data
            FROM latest LEFT JOIN page ON true ORDER BY page.seq
            """, logger: self.logger)
        var events: [UserEvent] = []
        var latestSeq: Int64 = 0
        var bytes = 0
        var cutShort = false
        typealias Row = (Int64, Int64?, UUID?, String?, Date?, String?)
        for try await (latest, seq, id, name, occurredAt, data) in rows.decode(Row.self) {
            latestSeq = latest
            guard let seq, let id, let name, let occurredAt, let data, !cutShort else { continue }
            bytes += data.utf8.count
            if !events.isEmpty, bytes > Self.maximumPageBytes {
                cutShort = true
                continue
            }
            events.append(
                UserEvent(
                    eventId: EntityID(id), seq: seq, type: name, occurredAt: occurredAt, data: try JSONAny.parse(Data(data.utf8)))
            )
        }
        let hasMore = cutShort || events.count > limit
        return SyncReply(events: Array(events.prefix(limit)), hasMore: hasMore, latestSeq: latestSeq)
    }

    /// `MESSAGE_SEEN`: the seer's deliveries of messages of that thread up to the seen one are
    /// SEEN. A pending one keeps no `delivered_at` until the seer's `ack_events` covers it: that
    /// ack sets it and sends the sender's `MESSAGE_DELIVERED`, as for any other delivery.
    ///
    /// Only the thread's messages after the last one the seer marked seen there
    /// (`seen_marks`) are looked at, so a mark costs what arrived since the previous one, not
    /// the seer's whole history. Marking an older message changes nothing.
    private func markSeen(user: UUID, upTo message: UUID, on connection: PostgresConnection) async throws {
        try await connection.query(
            """
            WITH target AS (
                SELECT thread_id, message_seq FROM events WHERE message_id = \(message) AND name = 'MESSAGE_CREATED'
            ), previous AS (
                SELECT coalesce(max(s.message_seq), 0) AS message_seq
                FROM seen_marks s JOIN target t USING (thread_id) WHERE s.user_id = \(user)
            ), marked AS (
                UPDATE deliveries d SET status = 'SEEN', seen_at = now()
                FROM events e, target t, previous p
                WHERE e.thread_id = t.thread_id AND e.name = 'MESSAGE_CREATED'
                  AND e.message_seq > p.message_seq AND e.message_seq <= t.message_seq
                  AND d.event_id = e.event_id AND d.user_id = \(user) AND d.status <> 'SEEN'
            )
            INSERT INTO seen_marks (user_id, thread_id, message_seq) SELECT \(user), thread_id, message_seq FROM target
            ON CONFLICT (user_id, thread_id) DO UPDATE SET message_seq = greatest(seen_marks.message_seq, excluded.message_seq)
            """, logger: self.logger)
    }

    /// Deletes expired deliveries, and the events whose last delivery that was, in chunks of
    /// `chunk` deliveries, each one short transaction (the events are found from the deleted
    /// rows' ids, never by scanning the deliveries).
    func prune(chunk: Int = 5_000) async throws -> Int {
        var removed = 0
        while true {
            let count = try await self.client.transaction(logger: self.logger) { connection in
                let gone = try await connection.query(
                    """
                    DELETE FROM deliveries WHERE (user_id, seq) IN (
                        SELECT user_id, seq FROM deliveries WHERE expires_at <= now() LIMIT \(chunk))
                    RETURNING event_id
                    """, logger: self.logger)
                var count = 0
                var events = Set<UUID>()
                for try await event in gone.decode(UUID.self) {
                    count += 1
                    events.insert(event)
                }
                if !events.isEmpty {
                    try await connection.query(
                        """
                        DELETE FROM events e WHERE e.event_id = ANY(\(Array(events)))
                          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.event_id)
                        """, logger: self.logger)
                }
                return count
            }
            removed += count
            if count < chunk { break }
        }
        // Events that never had a delivery (no recipients), once past the retention.
        try await self.client.write(
            """
            DELETE FROM events e WHERE e.created_at < now() - make_interval(secs => \(Double(self.retention.components.seconds)))
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.event_id)
            """, logger: self.logger)
        return removed
    }
}
