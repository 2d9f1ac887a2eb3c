import Foundation
import SocketIOProtocol

/// The envelope every message between services travels in.
///
/// The same fields are mirrored into AMQP properties (`type`, `message_id`, `timestamp`, and on
/// RPC requests the `x-correlation-id` header; the AMQP `correlation_id` matches a reply to its
/// call) so that routing never has to decode the body; the body stays self-describing for
/// outboxes, dead-letter queues and replays. Decoders ignore unknown fields, so producers may add
/// fields without a new version.
public struct Envelope<Payload: Sendable>: Sendable {
    /// The contract name with its version, for example `messaging.message_created.v1`.
    public var type: MessageType
    /// Unique per message; consumers deduplicate on it.
    public var id: UUID
    /// Follows one client request across every service it touches: the W3C trace id of the
    /// request (``RequestCorrelation``).
    public var correlationId: String?
    public var occurredAt: Date
    /// The authenticated user on whose behalf a request is made, as the gateway verified it
    /// from the access token (never taken from a client's payload).
    public var actorId: UUID?
    public var data: Payload

    enum CodingKeys: String, CodingKey {
        case type, id, correlationId, occurredAt, actorId, data
    }

    /// The correlation id is the current request's (``RequestCorrelation/id``) unless given.
    public init(
        type: MessageType, id: UUID = .v7(), correlationId: String? = RequestCorrelation.id, occurredAt: Date = Date(),
        actorId: UUID? = nil, data: Payload
    ) {
        self.type = type
        self.id = id
        self.correlationId = correlationId
        self.occurredAt = occurredAt
        self.actorId = actorId
        self.data = data
    }
}

/// The fields of an envelope that can be read without knowing its payload's type.
public struct EnvelopeHeader: Codable, Sendable {
    public var type: MessageType
    public var id: UUID
    public var correlationId: String?
    public var occurredAt: Date
    public var actorId: UUID?

    private enum CodingKeys: String, CodingKey {
        case type, id, correlationId, occurredAt, actorId
    }

    public init(type: MessageType, id: UUID, correlationId: String?, occurredAt: Date, actorId: UUID?) {
        self.type = type
        self.id = id
        self.correlationId = correlationId
        self.occurredAt = occurredAt
        self.actorId = actorId
    }
}

extension EnvelopeHeader {
    /// Ids in any case (read as ``EntityID``s, without Foundation's `sscanf`-based parser).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.type = try container.decode(MessageType.self, forKey: .type)
        self.id = try container.decode(EntityID.self, forKey: .id).uuid
        self.correlationId = try container.decodeIfPresent(String.self, forKey: .correlationId)
        self.occurredAt = try container.decode(Date.self, forKey: .occurredAt)
        self.actorId = try container.decodeIfPresent(EntityID.self, forKey: .actorId)?.uuid
    }

    /// Ids in lowercase, as ``Envelope`` writes them.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.type, forKey: .type)
        try container.encode(EntityID(self.id), forKey: .id)
        try container.encodeIfPresent(self.correlationId, forKey: .correlationId)
        try container.encode(self.occurredAt, forKey: .occurredAt)
        try container.encodeIfPresent(self.actorId.map(EntityID.init), forKey: .actorId)
    }
}

extension EnvelopeHeader {
    /// The envelope of `data` (JSON text) under this header: ``openingJSON``, `data`, `}`.
    /// Through Foundation's encoder, the header alone was 4 % of the gateway's CPU under load
    /// (perf, one per command it passes on).
    public func envelopeJSON(data: some Sequence<UInt8>) -> Data {
        var json = Data(self.openingJSON.utf8)
        json.append(contentsOf: data)
        json.append(UInt8(ascii: "}"))
        return json
    }

    /// The envelope's JSON up to its payload, written directly: the members ``encode(to:)``
    /// writes, then `"data":`. The payload and a closing `}` follow.
    public var openingJSON: String {
        var text = #"{"type":"#
        JSONValue.writeString(self.type.rawValue, to: &text)
        text += #","id":""# + EntityID(self.id).description + "\""
        if let correlationId = self.correlationId {
            text += #","correlationId":"#
            JSONValue.writeString(correlationId, to: &text)
        }
        text += #","occurredAt":""# + Timestamp.format(self.occurredAt) + "\""
        if let actorId = self.actorId { text += #","actorId":""# + EntityID(actorId).description + "\"" }
        return text + #","data":"#
    }
}

extension Envelope {
    /// Its fields but the payload.
    public var header: EnvelopeHeader {
        EnvelopeHeader(
            type: self.type, id: self.id, correlationId: self.correlationId, occurredAt: self.occurredAt, actorId: self.actorId)
    }
}

extension Envelope: Encodable where Payload: Encodable {
    /// The header's fields (ids in lowercase), then `data`.
    public func encode(to encoder: any Encoder) throws {
        try self.header.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.data, forKey: .data)
    }
}
extension Envelope where Payload: Encodable {
    /// This envelope as JSON: the payload through ``MessengerJSON``, the header written directly
    /// (``EnvelopeHeader/envelopeJSON(data:)``). What every service sends.
    public func encoded() throws -> Data {
        self.header.envelopeJSON(data: try MessengerJSON.encode(self.data))
    }
}
extension Envelope: Decodable where Payload: Decodable {
    /// The header's fields, then `data`.
    public init(from decoder: any Decoder) throws {
        let header = try EnvelopeHeader(from: decoder)
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            type: header.type, id: header.id, correlationId: header.correlationId, occurredAt: header.occurredAt,
            actorId: header.actorId, data: try container.decode(Payload.self, forKey: .data))
    }
}
