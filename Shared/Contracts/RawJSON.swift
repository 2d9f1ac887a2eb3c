import Foundation

/// JSON text that is already encoded (a value encoded once and sent in several places, such as
/// a new message in both the command's reply and its domain event). Written into RPC replies as
/// is, without decoding and encoding again.
public struct RawJSON: Sendable, Hashable {
    public var bytes: Data

    public init(bytes: Data) { self.bytes = bytes }

    /// `value` encoded with the shared coding.
    public init<Value: Encodable>(encoding value: Value) throws {
        self.bytes = try MessengerJSON.encode(value)
    }

    /// `{"ok":true,"data":<this>}`.
    public var successReply: Data {
        var reply = Data(#"{"ok":true,"data":"#.utf8)
        reply.append(self.bytes)
        reply.append(UInt8(ascii: "}"))
        return reply
    }
}

extension DomainEvent where Data == RawJSON {
    /// The envelope of this event as JSON, written directly: the event's fields are ids and a
    /// contract name (nothing to escape), and `data` is spliced in as it is.
    public func envelopeJSON(
        type: MessageType, id: UUID, correlationId: String?, occurredAt: Date, actorId: UUID?
    ) -> Foundation.Data {
        let header = EnvelopeHeader(type: type, id: id, correlationId: correlationId, occurredAt: occurredAt, actorId: actorId)
        var text = header.openingJSON + #"{"name":""# + self.name + #"","threadId":""# + self.threadId.description
        text += #"","recipients":["# + self.recipients.map { "\"\($0.description)\"" }.joined(separator: ",")
        text += #"],"data":"#
        var json = Foundation.Data(text.utf8)
        json.append(self.data.bytes)
        json.append(contentsOf: "}}".utf8)
        return json
    }
}

extension RawJSON: Encodable {
    /// `RawJSON` is spliced by the code that sends it (``successReply``,
    /// ``DomainEvent/envelopeJSON(type:id:correlationId:occurredAt:actorId:)``); an `Encoder` cannot embed raw
    /// text, so encoding it through one is refused rather than producing something else.
    public func encode(to encoder: any Encoder) throws {
        throw EncodingError.invalidValue(
            self, .init(codingPath: encoder.codingPath, debugDescription: "RawJSON is spliced, not encoded"))
    }
}
