import Foundation
import MessengerContracts
import Testing

@Suite("Message contracts")
struct ContractTests {
    struct PayloadV1: Codable, Sendable, Equatable {
        var text: String
    }

    @Test("an envelope round-trips with millisecond UTC timestamps")
    func envelopeRoundTrip() throws {
        let occurredAt = Date(timeIntervalSince1970: 1_795_000_000.123)
        let envelope = Envelope(
            type: "test.thing.v1", correlationId: "req-1", occurredAt: occurredAt, data: PayloadV1(text: "hi"))
        let data = try MessengerJSON.encode(envelope)
        let json = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["occurredAt"] as? String == "2026-11-18T11:06:40.123Z")
        #expect(json["type"] as? String == "test.thing.v1")
        let decoded = try MessengerJSON.decode(Envelope<PayloadV1>.self, from: data)
        #expect(decoded.data == envelope.data)
        #expect(decoded.id == envelope.id)
        #expect(abs(decoded.occurredAt.timeIntervalSince(occurredAt)) < 0.001)
    }

    @Test("decoders ignore fields added by a newer producer")
    func additiveEvolution() throws {
        let json = """
            {"type":"test.thing.v1","id":"0193a0c4-5e4b-7cc0-9a59-2d1c4e2f1a10","occurredAt":"2026-11-24T21:41:58.123Z",
             "data":{"text":"hi","addedLater":42},"someNewField":true}
            """
        let decoded = try MessengerJSON.decode(Envelope<PayloadV1>.self, from: Data(json.utf8))
        #expect(decoded.data.text == "hi")
        #expect(decoded.correlationId == nil)
    }

    @Test("timestamps are formatted with exactly three fractional digits")
    func timestampFormat() {
        #expect(Timestamp.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 1.0405)) == "1970-01-01T00:00:01.041Z")
        #expect(Timestamp.format(Date(timeIntervalSince1970: 59.9996)) == "1970-01-01T00:01:00.000Z")
    }

    @Test("timestamps without fractional seconds are accepted")
    func timestampWithoutFraction() {
        #expect(Timestamp.parse("2026-11-24T21:41:58Z") != nil)
        #expect(Timestamp.parse("yesterday") == nil)
    }

    @Test("message types carry their version")
    func messageTypeVersion() {
        #expect(MessageType("auth.ping.v1").version == 1)
        #expect(MessageType("messaging.message_created.v12").version == 12)
        #expect(MessageType("unversioned").version == nil)
        #expect(MessageType.ping(.auth).rawValue == "auth.ping.v1")
    }

    @Test("an RPC reply has the socket ack's shape")
    func replyShape() throws {
        let failure = try MessengerJSON.encode(RPCReply<EmptyPayload>.failure(.forbidden("not a member")))
        let json = try #require(JSONSerialization.jsonObject(with: failure) as? [String: Any])
        #expect(json["ok"] as? Bool == false)
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["code"] as? String == "forbidden")
        #expect(error["message"] as? String == "not a member")

        let decoded = try MessengerJSON.decode(RPCReply<PayloadV1>.self, from: Data(#"{"ok":true,"data":{"text":"x"}}"#.utf8))
        #expect(try decoded.get() == PayloadV1(text: "x"))
        let refused = try MessengerJSON.decode(
            RPCReply<PayloadV1>.self, from: Data(#"{"ok":false,"error":{"code":"conflict","message":"taken"}}"#.utf8))
        #expect(throws: ServiceError.conflict("taken")) { try refused.get() }
    }
}
