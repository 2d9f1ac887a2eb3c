import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import SocketIOProtocol
import ThreadedIO

/// The queues and exchanges delivery owns.
///
/// - `delivery.events`: every domain event a user may see (bound to `messenger.events` with
///   `messaging.#`), consumed by one replica at a time (`x-single-active-consumer`) so each
///   user's seqs follow the events' order. A poison message is dead-lettered to
///   `delivery.events.dead`. Its definition is ``DeliveryEvents/sharedQueue``: messaging declares
///   it too, so events relayed before delivery first started wait in it.
/// - `delivery.retry.<ms>ms`: one delay queue per retry level, with no consumer: a message waits
///   its TTL there, then dead-letters through the `delivery.retry` exchange into `delivery.due`,
///   where the retry check runs. Retries therefore live in RabbitMQ, not in a process's memory.
/// - `delivery.dead`: a ``DeadLetter`` for each push that exhausted its retries (the events
///   stay buffered for catch-up); an operator can inspect them, and replay them by moving them
///   to `delivery.due`, where ``RetryConsumer`` pushes each once more from the log
///   (docs/delivery.md). Bounded: every event a user has not acknowledged within the retries
///   ends here (offline users' too), so the queue keeps the newest ``deadLetterLimit`` and each
///   dead letter expires with its event's retention.
///
/// The gateways' queue (``GatewayPushes``), which delivery publishes into, is declared by
/// ``BackendService`` for every producer of a ``SharedQueue``.
enum DeliveryTopology {
    static let events = DeliveryEvents.queue
    /// The AMQP type of several receipts in one message on `delivery.events` (a ``MessageBatch``).
    static let receiptsBatchType = "delivery.receipts.batch.v1"
    static let poison = DeliveryEvents.poisonQueue
    static let retryExchange = "delivery.retry"
    static let due = "delivery.due"
    static let dueKey = "due"
    static let dead = "delivery.dead"
    /// How many dead letters `delivery.dead` keeps; past it the oldest are dropped
    /// (`x-overflow: drop-head`). A queue's arguments cannot change once it exists, so this is a
    /// constant, not a setting (docs/delivery.md, "Retries and dead letters").
    static let deadLetterLimit: Int64 = 100_000

    static func delayQueue(_ delay: Duration) -> String {
        "delivery.retry.\(Backoff.milliseconds(delay))ms"
    }

    static func deadLetterArguments(_ queueArguments: [String: AMQPFieldValue]) -> [String: AMQPFieldValue] {
        var arguments = queueArguments
        arguments["x-max-length"] = .int(Self.deadLetterLimit)
        arguments["x-overflow"] = .string("drop-head")
        return arguments
    }

    static func topology(delays: [Duration], queueArguments: [String: AMQPFieldValue]) -> AMQPTopology {
        let delayQueues = delays.map { delay -> AMQPTopology.Queue in
            var arguments = queueArguments
            arguments["x-message-ttl"] = .int(Int64(Backoff.milliseconds(delay)))
            arguments["x-dead-letter-exchange"] = .string(Self.retryExchange)
            arguments["x-dead-letter-routing-key"] = .string(Self.dueKey)
            return .init(Self.delayQueue(delay), arguments: arguments)
        }
        return AMQPTopology(declaring: DeliveryEvents.sharedQueue, queueArguments: queueArguments).merged(
            with: AMQPTopology(
                exchanges: [.init(Self.retryExchange, kind: .direct)],
                queues: [
                    .init(Self.poison, arguments: queueArguments), .init(Self.due, arguments: queueArguments),
                    .init(Self.dead, arguments: Self.deadLetterArguments(queueArguments)),
                ] + delayQueues,
                bindings: [.init(queue: Self.due, exchange: Self.retryExchange, routingKey: Self.dueKey)]))
    }
}

/// A stored event ready to go to one user: what a push carries. The event's data is JSON text,
/// written once per event (or read as stored) and spliced into each of its pushes.
struct Delivery: Sendable {
    var userID: UUID
    var eventID: EntityID
    var seq: Int64
    /// The domain event's name (`MESSAGE_CREATED`).
    var name: String
    var occurredAt: Date
    var dataJSON: String
}

/// The retry check that follows pushes: `{eventIds, attempt}` (attempt 1 is the first check),
/// one message for all the events pushed within a short window, checked set-wise.
struct RetryCheck: Codable, Sendable {
    var eventIds: [EntityID]
    var attempt: Int

    init(eventIds: [EntityID], attempt: Int) {
        self.eventIds = eventIds
        self.attempt = attempt
    }

    private enum CodingKeys: String, CodingKey { case eventIds, eventId, attempt }

    /// Also reads the one-event form (`eventId`) that earlier versions scheduled.
    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.attempt = try container.decode(Int.self, forKey: .attempt)
        if let single = try container.decodeIfPresent(EntityID.self, forKey: .eventId) {
            self.eventIds = [single]
        } else {
            self.eventIds = try container.decode([EntityID].self, forKey: .eventIds)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.eventIds, forKey: .eventIds)
        try container.encode(self.attempt, forKey: .attempt)
    }
}

/// A push that exhausted its retries, as `delivery.dead` keeps it:
/// `{"attempts","eventId","seq","type","userId"}`, the delivery it was, not what it said, so a
/// message deleted since keeps no text there. Moved to `delivery.due`, it is pushed once more
/// from the log, as the log has it then (``RetryConsumer``); a delivery acknowledged or expired
/// meanwhile is not.
struct DeadLetter: Codable, Sendable {
    /// Its AMQP type, which tells it from a retry check in `delivery.due`.
    static let messageType = "delivery.dead_letter.v1"

    var userId: EntityID
    var eventId: EntityID
    var seq: Int64
    /// The domain event's name (`MESSAGE_CREATED`).
    var type: String
    /// Pushes sent: the first and its retries.
    var attempts: Int
}

/// Publishes pushes to the gateways and schedules the retry checks.
struct PushPublisher: Sendable {
    let amqp: AMQPConnection
    let delays: [Duration]

    /// The gateway push for `delivery`: to the user's room, under the client event name,
    /// `{"args":[{"data","eventId","occurredAt","seq","type"}],"event","redelivery","rooms"}`.
    /// Written by hand around the event's data text (the same bytes ``JSONValue`` writes for the
    /// whole push): a group's event is encoded once, not once per member.
    func push(_ delivery: Delivery, redelivery: Bool) -> AMQPMessage {
        var body = #"{"args":[{"data":"#
        body.reserveCapacity(delivery.dataJSON.utf8.count + 256)
        body += delivery.dataJSON
        body += #","eventId":"#
        JSONValue.writeString(delivery.eventID.description, to: &body)
        body += #","occurredAt":"#
        JSONValue.writeString(Timestamp.format(delivery.occurredAt), to: &body)
        body += #","seq":"# + String(delivery.seq) + #","type":"#
        JSONValue.writeString(delivery.name, to: &body)
        body += #"}],"event":"#
        JSONValue.writeString(ClientEvent.name(for: delivery.name), to: &body)
        body += redelivery ? #","redelivery":true,"rooms":["# : #","redelivery":false,"rooms":["#
        JSONValue.writeString("user:\(EntityID(delivery.userID))", to: &body)
        body += "]}"
        return AMQPMessage(
            exchange: GatewayPushes.exchange, routingKey: GatewayPushes.routingKey, body: Data(body.utf8),
            properties: AMQPProperties(
                messageID: "\(delivery.eventID):\(EntityID(delivery.userID))", type: GatewayPushes.pushType,
                expiration: GatewayPushes.expiration)
        ).batched(as: GatewayPushes.batchType)
    }

    /// The retry check number `attempt` (1-based) for `events`, in the delay queue of its level.
    func retryCheck(events: [EntityID], attempt: Int) throws -> AMQPMessage? {
        guard attempt >= 1, attempt <= self.delays.count, let first = events.first else { return nil }
        return AMQPMessage(
            exchange: "", routingKey: DeliveryTopology.delayQueue(self.delays[attempt - 1]),
            body: try MessengerJSON.encode(RetryCheck(eventIds: events, attempt: attempt)),
            properties: AMQPProperties(
                messageID: "\(first)+\(events.count - 1):\(attempt)", type: "delivery.retry_check.v1"))
    }

    /// The dead letter of `delivery` after `attempts` pushes, into `delivery.dead`; it expires
    /// after `retention`, when its event has left the log.
    func deadLetter(_ delivery: Delivery, attempts: Int, retention: Duration) throws -> AMQPMessage {
        let letter = DeadLetter(
            userId: EntityID(delivery.userID), eventId: delivery.eventID, seq: delivery.seq, type: delivery.name,
            attempts: attempts)
        return AMQPMessage(
            exchange: "", routingKey: DeliveryTopology.dead, body: try MessengerJSON.encode(letter),
            properties: AMQPProperties(
                contentType: "application/json", messageID: "\(delivery.eventID):\(EntityID(delivery.userID))",
                type: DeadLetter.messageType, expiration: String(Backoff.milliseconds(retention)),
                headers: ["x-attempts": .int(Int64(attempts))]))
    }

    /// Hands `receipts` to the event consumer: each goes into `delivery.events` as a domain event
    /// of its own (those of one ack may travel as one ``MessageBatch``); returns once the broker
    /// confirmed them, or throws `unavailable` at `deadline` (the ack waits for these inside its
    /// transaction, and a broker outage must not hold its connection). They carry the correlation
    /// id of the ack that caused them.
    func sendToConsumer(_ receipts: [IncomingEvent], before deadline: ContinuousClock.Instant) async throws {
        let type: MessageType = "delivery.message_delivered.v1"
        let correlationID = RequestCorrelation.id
        let messages = receipts.map { receipt in
            // The envelope written by hand around the receipt's data (``DomainEvent/envelopeJSON``).
            let event = DomainEvent(
                name: receipt.name, threadId: EntityID(receipt.threadID), recipients: receipt.recipients.map(EntityID.init),
                data: RawJSON(bytes: Data(receipt.data.jsonText.utf8)))
            return AMQPMessage(
                exchange: "", routingKey: DeliveryTopology.events,
                body: event.envelopeJSON(
                    type: type, id: receipt.id, correlationId: correlationID, occurredAt: receipt.occurredAt,
                    actorId: receipt.actor),
                properties: AMQPProperties(
                    contentType: "application/json", messageID: EntityID(receipt.id).description, type: type.rawValue)
            ).batched(as: DeliveryTopology.receiptsBatchType)
        }
        let confirms = try self.amqp.startPublishing(messages)
        try await withDeadline(deadline, waitingFor: "the broker's confirm of the delivery receipts") {
            try await confirms.confirmed()
        }
    }

    /// Starts pushing `deliveries` (their first retry check is ``FirstRetryChecks``'s) and
    /// returns their confirms.
    func startSending(_ deliveries: [Delivery]) throws -> PendingConfirms {
        try self.amqp.startPublishing(deliveries.map { self.push($0, redelivery: false) })
    }
}
