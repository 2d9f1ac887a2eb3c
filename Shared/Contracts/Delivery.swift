import Foundation

/// The delivery service's RPCs (requests on `delivery.rpc`).
public enum DeliveryMessage {
    /// `ack_events`: everything up to a seq is delivered.
    public static let ackEvents: MessageType = "delivery.ack_events.v1"
    /// `sync`, and the replay on connect: unacknowledged events after a seq, in order.
    public static let sync: MessageType = "delivery.sync.v1"
}

/// The client-facing event names of the durable events (protocol.md, "Events"), by the domain
/// event's `type`.
public enum ClientEvent {
    public static let names: [String: String] = [
        "THREAD_CREATED": "conversation_created",
        "MESSAGE_CREATED": "message_created",
        "MESSAGE_UPDATED": "message_updated",
        "MESSAGES_DELETED": "bulk_message_deleted",
        "REACTION_ADDED": "reaction_added",
        "REACTION_REMOVED": "reaction_removed",
        "ATTACHMENT_ADDED": "attachment_added",
        "MESSAGE_DELIVERED": "message_delivered",
        "MESSAGE_SEEN": "message_seen",
    ]

    /// Every client event name of a durable event (those the gateway orders per socket).
    public static let durable = Set(names.values)

    /// The client event name a domain event of `type` is emitted under.
    public static func name(for type: String) -> String { Self.names[type] ?? type.lowercased() }
}

/// `ack_events {upToSeq}` and its reply (clamped to the user's latest seq).
public struct AckEventsRequest: Codable, Sendable {
    public var upToSeq: Int64
    public init(upToSeq: Int64) { self.upToSeq = upToSeq }

    /// Over `Int64`'s range is `Int64.max`: the ack clamps it to the user's latest seq like any
    /// value above it, instead of refusing the payload (``KeyedDecodingContainer/decodeWholeNumber(forKey:)``).
    public init(from decoder: any Decoder) throws {
        self.upToSeq = try decoder.container(keyedBy: CodingKeys.self).decodeWholeNumber(forKey: .upToSeq)
    }
}

/// `sync {afterSeq, limit?, includeAcknowledged?, acknowledgedSince?, acknowledgedAfter?}`.
public struct SyncRequest: Codable, Sendable {
    public var afterSeq: Int64
    public var limit: Int?
    /// Also the events acknowledged already (by this device or another), as long as the log
    /// keeps them: what a gateway fetches to fill a gap in a connected socket's seqs. Not in the
    /// contract, which has `sync` return unacknowledged events; a client may ask it too (its own
    /// events, as `sync` always returns), to catch a device up on what another one acknowledged.
    public var includeAcknowledged: Bool?
    /// With `includeAcknowledged`: only the acknowledged events stored (first pushed) at or
    /// after this moment. A gateway's socket that may have missed pushes during its replay asks
    /// for these: the ones stored since it registered, which it must get, and not the older
    /// ones its replay rightly left out.
    public var acknowledgedSince: Date?
    /// Also the acknowledged events with a seq above this one: what a gateway asks for in a
    /// replay's pages after the first, above that page's `latestSeq`, the events stored after
    /// the replay began, which go to the socket whether another device acknowledged them or
    /// not. Not in the contract either.
    public var acknowledgedAfter: Int64?
    public init(
        afterSeq: Int64, limit: Int? = nil, includeAcknowledged: Bool? = nil, acknowledgedSince: Date? = nil,
        acknowledgedAfter: Int64? = nil
    ) {
        self.afterSeq = afterSeq
        self.limit = limit
        self.includeAcknowledged = includeAcknowledged
        self.acknowledgedSince = acknowledgedSince
        self.acknowledgedAfter = acknowledgedAfter
    }

    /// Whole numbers, each named in the error when it is not one; past `Int64`'s range is its
    /// bound (an `afterSeq` past every seq, a `limit` the service refuses as out of range).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.afterSeq = try container.decodeWholeNumber(forKey: .afterSeq)
        if container.contains(.limit), try !container.decodeNil(forKey: .limit) {
            self.limit = Int(clamping: try container.decodeWholeNumber(forKey: .limit))
        }
        self.includeAcknowledged = try container.decodeIfPresent(Bool.self, forKey: .includeAcknowledged)
        self.acknowledgedSince = try container.decodeIfPresent(Date.self, forKey: .acknowledgedSince)
        if container.contains(.acknowledgedAfter), try !container.decodeNil(forKey: .acknowledgedAfter) {
            self.acknowledgedAfter = try container.decodeWholeNumber(forKey: .acknowledgedAfter)
        }
    }
}

/// A durable event as one user receives it: `{eventId, seq, type, occurredAt, data}`.
public struct UserEvent: Codable, Sendable, Hashable {
    public var eventId: EntityID
    public var seq: Int64
    /// The domain event's name (`MESSAGE_CREATED`).
    public var type: String
    public var occurredAt: Date
    public var data: JSONAny

    public init(eventId: EntityID, seq: Int64, type: String, occurredAt: Date, data: JSONAny) {
        self.eventId = eventId
        self.seq = seq
        self.type = type
        self.occurredAt = occurredAt
        self.data = data
    }
}

/// `{events, hasMore, latestSeq}`: the reply of `sync`. `latestSeq` (beyond the contract,
/// additive) is the highest seq the user has, acknowledged or not: a client whose own idea of
/// it is higher kept state it should not have (another account's, or from before a reset).
public struct SyncReply: Codable, Sendable {
    public var events: [UserEvent]
    public var hasMore: Bool
    public var latestSeq: Int64
    public init(events: [UserEvent], hasMore: Bool, latestSeq: Int64) {
        self.events = events
        self.hasMore = hasMore
        self.latestSeq = latestSeq
    }
}
