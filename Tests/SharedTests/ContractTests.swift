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

    @Test(
        "an envelope written directly holds what Foundation's encoder writes, and reads back the same",
        arguments: [nil, "req-1", #"a "quoted" \ back\slash"#, "line\nbreak\t\u{01}\u{1F}", "é 😀 \u{2028}\u{2029} </x>"]
    )
    func directEnvelope(correlationId: String?) throws {
        for actor: UUID? in [nil, UUID()] {
            let envelope = Envelope(
                type: "test.thing.v1", correlationId: correlationId, occurredAt: Date(timeIntervalSince1970: 1_795_000_000.123),
                actorId: actor, data: PayloadV1(text: "hi \"there\""))
            let written = try envelope.encoded()
            let direct = try #require(JSONSerialization.jsonObject(with: written) as? NSDictionary)
            let foundation = try #require(
                JSONSerialization.jsonObject(with: try MessengerJSON.makeEncoder().encode(envelope)) as? NSDictionary)
            #expect(direct == foundation)
            let decoded = try MessengerJSON.decode(Envelope<PayloadV1>.self, from: written)
            #expect(decoded.header.correlationId == correlationId && decoded.actorId == actor && decoded.id == envelope.id)
            #expect(decoded.type == envelope.type && decoded.data == envelope.data)
            #expect(abs(decoded.occurredAt.timeIntervalSince(envelope.occurredAt)) < 0.001)
            // A payload passed on as JSON text is spliced as it is.
            let forwarded = envelope.header.envelopeJSON(data: #"{"text":"hi \"there\""}"#.utf8)
            #expect(try MessengerJSON.decode(Envelope<PayloadV1>.self, from: forwarded).data == envelope.data)
        }
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

    @Test("timestamps are written and read as Foundation's ISO 8601 format style does")
    func timestampAgainstFormatStyle() throws {
        let seconds = Date.ISO8601FormatStyle()
        let fractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        var generator = SystemRandomNumberGenerator()
        var samples: [Int64] = [0, -1, 951_782_400_500, 4_107_542_399_999, -2_208_988_800_000]
        for _ in 0..<2_000 { samples.append(Int64.random(in: -2_000_000_000_000...4_000_000_000_000, using: &generator)) }
        for milliseconds in samples {
            let (whole, fraction) = milliseconds.quotientAndRemainder(dividingBy: 1000)
            let (second, millisecond) = fraction < 0 ? (whole - 1, fraction + 1000) : (whole, fraction)
            let expected =
                seconds.format(Date(timeIntervalSince1970: Double(second))).dropLast() + "."
                + String(String(millisecond + 1000).dropFirst()) + "Z"
            let text = Timestamp.format(Date(timeIntervalSince1970: Double(milliseconds) / 1000))
            #expect(text == expected, "\(milliseconds)")
            let parsed = try #require(Timestamp.parse(text))
            #expect(abs(parsed.timeIntervalSince1970 - Double(milliseconds) / 1000) < 0.000_001, "\(text)")
            #expect(abs(parsed.timeIntervalSince(try fractional.parse(text))) < 0.000_001, "\(text)")
        }
    }

    @Test("timestamps in other RFC 3339 forms are read; malformed ones are refused")
    func timestampForms() throws {
        let utc = try #require(Timestamp.parse("2026-11-24T21:41:58.123Z"))
        let offset = try #require(Timestamp.parse("2026-11-24T22:41:58.123+01:00"))
        #expect(abs(offset.timeIntervalSince(utc)) < 0.000_001)
        #expect(
            Timestamp.parse("2026-11-24T21:41:58.123456Z").map { abs($0.timeIntervalSince(utc) - 0.000456) < 0.000_001 } == true)
        for bad in ["2026-11-24T21:41:58.Z", "2026-11-24 21:41:58Z", "2026-11-24T21:41Z", "2026-11-24T21:41:5xZ"] {
            #expect(Timestamp.parse(bad) == nil, "\(bad)")
        }
    }

    /// Foundation reads years of up to ten digits, and postgres-nio trapped encoding a date past
    /// about 292,000 years from 2000: a `sync` naming one stopped delivery until the sixty-second
    /// session.
    @Test("timestamps name the years 1 to 9999, and a request naming another is refused")
    func timestampYears() throws {
        #expect(Timestamp.parse("0001-01-01T00:00:00Z")?.timeIntervalSince1970 == -62_135_596_800)
        #expect(Timestamp.parse("9999-12-31T23:59:59.999Z") != nil)
        #expect(Timestamp.parse("9999-12-31T23:59:59Z") != nil)
        for far in [
            "500000-01-01T00:00:00Z", "500000-01-01T00:00:00.000Z", "10000-01-01T00:00:00Z", "0000-12-31T23:59:59Z",
            "9999999999-01-01T00:00:00Z", "-500000-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00",
        ] {
            #expect(Timestamp.parse(far) == nil, "\(far)")
        }
        let request = Data(#"{"afterSeq":0,"includeAcknowledged":true,"acknowledgedSince":"500000-01-01T00:00:00Z"}"#.utf8)
        #expect(throws: (any Error).self) { try MessengerJSON.decode(SyncRequest.self, from: request) }
    }

    @Test("random and time-ordered UUIDs carry their version and variant, and do not repeat")
    func uuidVersions() {
        var seen = Set<UUID>()
        for _ in 0..<5_000 {
            let random = UUID.random()
            let ordered = UUID.v7()
            #expect(random.uuid.6 >> 4 == 4 && random.uuid.8 >> 6 == 2)
            #expect(ordered.uuid.6 >> 4 == 7 && ordered.uuid.8 >> 6 == 2)
            seen.insert(random)
            seen.insert(ordered)
        }
        #expect(seen.count == 10_000)
        let earlier = UUID.v7(at: Date(timeIntervalSince1970: 1_000))
        let later = UUID.v7(at: Date(timeIntervalSince1970: 1_000.002))
        #expect(earlier.uuidString < later.uuidString)
    }

    @Test("UUIDs are written and read as Foundation does, in lowercase")
    func uuidText() throws {
        for uuid in (0..<2_000).map({ _ in UUID() }) + [UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))] {
            let text = uuid.lowercasedText
            #expect(text == uuid.uuidString.lowercased())
            #expect(UUID(text: text) == uuid)
            #expect(UUID(text: uuid.uuidString) == uuid)
            #expect(UUID(text: Substring("x" + text).dropFirst()) == uuid)
        }
        let valid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
        for bad in [
            "", "0190a1b2c3d47e5f8a9b0c1d2e3f4a5b", valid + "0", String(valid.dropLast()), "0190a1b2-c3d4-7e5f-8a9b_0c1d2e3f4a5b",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5g", "-0190a1b2c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5é",
        ] {
            #expect(UUID(text: bad) == nil, "\(bad)")
            #expect(UUID(uuidString: bad) == nil, "Foundation agrees on \(bad)")
        }
    }

    @Test("JSONAny reads and writes JSON text as Foundation's coders do")
    func jsonAnyText() throws {
        let text = #"""
            {"message":{"id":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","seq":42,"body":"h\u00e9 \"q\" \\ \n 🎉","ratio":0.25,
            "big":9007199254740991,"neg":-3,"deleted":null,"ok":true,"no":false,"tags":["a",[],{}]}}
            """#
        let fast = try JSONAny.parse(Data(text.utf8))
        let foundation = try MessengerJSON.decode(JSONAny.self, from: Data(text.utf8))
        #expect(fast == foundation)
        #expect(fast["message"]?["seq"]?.int64Value == 42)
        #expect(try JSONAny.parse(Data(fast.jsonText.utf8)) == fast)
        #expect(try MessengerJSON.decode(JSONAny.self, from: Data(fast.jsonText.utf8)) == fast)
        #expect(JSONAny.number(42).jsonText == "42")
        for bad in ["", "{", "[1,]", "{\"a\":}", "nul", "\"unterminated"] {
            #expect(throws: (any Error).self) { try JSONAny.parse(Data(bad.utf8)) }
        }
    }

    @Test("a message's hand-written JSON is what Foundation's encoder writes, and reads back the same")
    func messageJSON() throws {
        let at = Date(timeIntervalSince1970: 1_764_000_000.123)
        let attachment = Attachment(
            id: .make(), messageId: .make(), type: "image", url: "https://cdn.example/a/b \"c\".png", fileName: "b\\c\n.png",
            contentType: "image/png", sizeBytes: 12_345, width: 640, height: 480, createdAt: at)
        var bare = attachment
        bare.messageId = nil
        bare.width = nil
        bare.height = nil
        let bodies = ["hello", "h\u{e9} \"q\" \\ / \n\r\t \u{1}\u{1f} 🎉 \u{2028}\u{2029} — €", ""]
        for body in bodies {
            for full in [false, true] {
                let message = ChatMessage(
                    id: .make(), threadId: .make(), senderId: .make(), clientMessageId: "c-\(body.count) \"x\"",
                    seq: 9_007_199_254,
                    body: body, replyToId: full ? .make() : nil, attachments: full ? [attachment, bare] : [],
                    reactions: full ? [ReactionGroup(emojiHex: "1f44d", userIds: [.make(), .make()])] : [],
                    createdAt: at, editedAt: full ? at.addingTimeInterval(1) : nil,
                    deletedAt: full ? at.addingTimeInterval(2) : nil)
                let written = message.envelopeJSON.bytes
                let foundation = try MessengerJSON.encode(MessageEnvelope(message: message))
                #expect(try JSONAny.parse(written) == JSONAny.parse(foundation), "\(String(decoding: written, as: UTF8.self))")
                #expect(try MessengerJSON.decode(MessageEnvelope.self, from: written).message == message)
            }
        }
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

    @Test("seqs and limits are whole numbers: exact, whole doubles, or clamped past Int64; others name the field")
    func wholeNumbers() throws {
        func sync(_ json: String) throws -> SyncRequest { try MessengerJSON.decode(SyncRequest.self, from: Data(json.utf8)) }
        func ack(_ json: String) throws -> AckEventsRequest {
            try MessengerJSON.decode(AckEventsRequest.self, from: Data(json.utf8))
        }
        #expect(try sync(#"{"afterSeq":3}"#).afterSeq == 3)
        #expect(try sync(#"{"afterSeq":3,"limit":null}"#).limit == nil)
        #expect(try sync(#"{"afterSeq":9.223372036854776e18,"limit":1e300}"#).afterSeq == .max)
        #expect(try sync(#"{"afterSeq":0,"limit":1e300}"#).limit == .max)
        #expect(try sync(#"{"afterSeq":0,"limit":-1e300}"#).limit == .min)
        #expect(try sync(#"{"afterSeq":0,"acknowledgedAfter":600}"#).acknowledgedAfter == 600)
        #expect(try sync(#"{"afterSeq":0,"acknowledgedAfter":null}"#).acknowledgedAfter == nil)
        #expect(try ack(#"{"upToSeq":1.7976931348623157e308}"#).upToSeq == .max)
        #expect(try ack(#"{"upToSeq":-2}"#).upToSeq == -2)
        for (json, field) in [
            (#"{"afterSeq":1.5}"#, "afterSeq"), (#"{"afterSeq":0,"limit":2.5}"#, "limit"), (#"{"afterSeq":"x"}"#, "afterSeq"),
            (#"{"afterSeq":0,"acknowledgedAfter":0.5}"#, "acknowledgedAfter"),
        ] {
            do {
                _ = try sync(json)
                Issue.record("\(json) decoded")
            } catch DecodingError.dataCorrupted(let context), DecodingError.typeMismatch(_, let context) {
                #expect(context.codingPath.fieldName == field, "\(json)")
            } catch {
                Issue.record("\(json): \(error) names no field")
            }
        }
    }
}

@Suite("Messaging contract")
struct MessagingContractTests {
    @Test("bodies are trimmed of Unicode whitespace and counted in code points")
    func bodies() throws {
        #expect(try MessagingRules().body("\u{3000} hello\n\t") == "hello")
        #expect(throws: ServiceError.self) { try MessagingRules().body(" \u{2003}\n") }
        #expect(try MessagingRules().body(String(repeating: "👍", count: 4000)).unicodeScalars.count == 4000)
        #expect(throws: ServiceError.self) { try MessagingRules().body(String(repeating: "a", count: 4001)) }
    }

    @Test("emojiHex: lowercase hex code points joined by '-', in one spelling")
    func emojiHex() throws {
        for valid in [
            "1f44d", "1f468-200d-1f469", "2764-fe0f", "a9", "10ffff",
            // A keycap, a flag, a tag sequence (Scotland's flag), a skin tone.
            "23-fe0f-20e3", "1f1eb-1f1f7", "1f3f4-e0067-e0062-e0073-e0063-e0074-e007f", "1f44d-1f3fd",
        ] {
            #expect(try MessagingRules.emojiHex(valid) == valid)
        }
        // One stored before the rules for what members are shown stays removable.
        #expect(try MessagingRules.emojiHex("202e", shown: false) == "202e")
        // One spelling per code point: leading zeros go.
        for (given, canonical) in [("0041", "41"), ("00a9-fe0f", "a9-fe0f"), ("01f44d", "1f44d"), ("000041-0200d", "41-200d")] {
            #expect(try MessagingRules.emojiHex(given) == canonical)
        }
        for invalid in [
            "", "1F44D", "zz", "1f44d-", "-1f44d", "1f44d--1f44e", "110000", "d800", "0001f44d", "1f44d 1f44e", "0", "0000",
            "1f44d-0", "+41", Array(repeating: "41", count: 17).joined(separator: "-"),
            // Shown to every member as a title is: nothing visible, a line feed, a line
            // separator, a reversal of what follows.
            "a", "200b", "fe0f", "2028", "202e", "1f44d-202e", "7-1f44d",
        ] {
            #expect(throws: ServiceError.self, "\(invalid)") { try MessagingRules.emojiHex(invalid) }
        }
        // The longest spelling passes the length check made before the split; a megabyte of
        // separators is refused by it (it was split into a million parts first).
        let longest = Array(repeating: "10ffff", count: 16).joined(separator: "-")
        #expect(try MessagingRules.emojiHex(longest) == longest)
        #expect(throws: ServiceError.self) { try MessagingRules.emojiHex(String(repeating: "-", count: 1_000_000)) }
    }

    @Test("titles and client message ids keep their limits")
    func limits() throws {
        #expect(try MessagingRules().title("  Team  ") == "Team")
        #expect(throws: ServiceError.self) { try MessagingRules().title(nil) }
        #expect(throws: ServiceError.self) { try MessagingRules().title(String(repeating: "t", count: 129)) }
        // Shown as written, like a display name: something visible, no control characters, no
        // bidirectional overrides; right-to-left text itself is fine.
        for refused in [
            "\u{200B}", " \u{FEFF}\u{200B} ", "a\u{202E}b", "x\u{2067}y", "bell\u{7}", "tab\tbed", "nul\u{0}", "\u{2800}",
            "\u{3164}\u{3164}", "Team\u{2029}admin: open this", "a\u{2028}b",
        ] {
            #expect(throws: ServiceError.self) { try MessagingRules().title(refused) }
        }
        #expect(try MessagingRules().title("فريق العمل") == "فريق العمل")
        #expect(try MessagingRules().title("فريق \u{200F}2") == "فريق \u{200F}2")  // a mark is kept
        #expect(try MessagingRules().title("👨‍👩‍👧 family") == "👨‍👩‍👧 family")
        #expect(throws: ServiceError.self) { try MessagingRules().clientMessageID("") }
        #expect(throws: ServiceError.self) { try MessagingRules().clientMessageID(String(repeating: "c", count: 65)) }
    }

    @Test("an event spliced around pre-encoded JSON decodes as the envelope it stands for")
    func splicedEvent() throws {
        let message = ChatMessage(
            id: .make(), threadId: .make(), senderId: .make(), clientMessageId: "c\"1", seq: 7, body: "he said \"hi\"\n",
            replyToId: nil, attachments: [], reactions: [], createdAt: Date(timeIntervalSince1970: 1_790_000_000),
            editedAt: nil, deletedAt: nil)
        let raw = try RawJSON(encoding: MessageEnvelope(message: message))
        let event = DomainEvent(name: "MESSAGE_CREATED", threadId: message.threadId, recipients: [message.senderId], data: raw)
        let id = UUID.v7()
        let actor = UUID()
        let json = event.envelopeJSON(
            type: "messaging.message_created.v1", id: id, correlationId: "4bf92f3577b34da6a3ce929d0e0e4736",
            occurredAt: message.createdAt, actorId: actor)
        let decoded = try MessengerJSON.decode(Envelope<DomainEvent<MessageEnvelope>>.self, from: json)
        #expect(decoded.id == id && decoded.actorId == actor && decoded.type == "messaging.message_created.v1")
        #expect(decoded.correlationId == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(decoded.data.name == "MESSAGE_CREATED" && decoded.data.recipients == [message.senderId])
        #expect(decoded.data.data.message == message)
        let reply = try MessengerJSON.decode(RPCReply<MessageEnvelope>.self, from: raw.successReply)
        #expect(try reply.get().message == message)
        // Ids are written in lowercase.
        #expect(String(decoding: json, as: UTF8.self).contains(#""id":"\#(EntityID(id).description)""#))
    }

    @Test("envelopes write their ids in lowercase")
    func lowercaseEnvelopeIDs() throws {
        let envelope = Envelope(type: "t.v1", actorId: UUID(), data: EmptyPayload())
        let object = try JSONSerialization.jsonObject(with: try MessengerJSON.encode(envelope)) as? [String: Any]
        #expect(object?["id"] as? String == envelope.id.uuidString.lowercased())
        #expect(object?["actorId"] as? String == envelope.actorId?.uuidString.lowercased())
        let header = try JSONSerialization.jsonObject(with: try MessengerJSON.encode(envelope.header)) as? [String: Any]
        #expect(header?["id"] as? String == envelope.id.uuidString.lowercased())
    }
}

@Suite("Per-socket event ordering")
struct SeqOrderingTests {
    func decide(_ ordering: inout SeqOrdering, _ seq: Int64, _ redelivery: Bool) -> SeqOrdering.Decision {
        ordering.decide(seq: seq, redelivery: redelivery)
    }
    func accept(_ ordering: inout SeqOrdering, _ seq: Int64) -> Bool { ordering.accept(fetched: seq) }
    func afterGap(_ ordering: inout SeqOrdering, _ seq: Int64) -> Bool { ordering.decideAfterGap(seq: seq) }

    @Test("in order: each seq goes out once; duplicates are dropped")
    func inOrder() {
        var ordering = SeqOrdering(after: 3)
        #expect(decide(&ordering, 3, false) == .drop)
        #expect(decide(&ordering, 4, false) == .emit)
        #expect(decide(&ordering, 4, false) == .drop)
        #expect(decide(&ordering, 5, false) == .emit)
        #expect(ordering.delivered == 5)
    }

    @Test("a lastSeq past the user's latest seq comes down to it; one below stays")
    func resumeAtMost() {
        var ahead = SeqOrdering(after: 100)
        ahead.resume(atMost: 2)
        #expect(ahead.delivered == 2)
        #expect(decide(&ahead, 3, false) == .emit)
        var behind = SeqOrdering(after: 5)
        behind.resume(atMost: 9)
        #expect(behind.delivered == 5)
    }

    @Test("a redelivery goes out again even when the socket had it")
    func redelivery() {
        var ordering = SeqOrdering(after: 0)
        #expect(decide(&ordering, 1, false) == .emit)
        #expect(decide(&ordering, 1, true) == .emit)
        #expect(ordering.delivered == 1)
    }

    @Test("a gap is filled from the log before the event that opened it")
    func gap() {
        var ordering = SeqOrdering(after: 2)
        #expect(decide(&ordering, 6, false) == .fillGap(after: 2))
        #expect(ordering.delivered == 2)
        #expect(accept(&ordering, 3))
        #expect(accept(&ordering, 4))
        #expect(!accept(&ordering, 4))
        // 5 was acknowledged on another device: not fetched back; 6 goes out after 4.
        #expect(afterGap(&ordering, 6))
        #expect(decide(&ordering, 5, false) == .drop)
        #expect(decide(&ordering, 7, false) == .emit)
    }

    @Test("replay then live: the seam has no duplicate and no reordering")
    func seam() {
        var ordering = SeqOrdering(after: 10)
        let replayed = (8...14).filter { ordering.accept(fetched: $0) }
        #expect(replayed == [11, 12, 13, 14])
        // Live pushes that arrived during the replay.
        #expect(decide(&ordering, 13, false) == .drop)
        #expect(decide(&ordering, 14, false) == .drop)
        #expect(decide(&ordering, 15, false) == .emit)
        #expect(SeqOrdering(after: -5).delivered == 0)
    }

    @Test("client event names of the durable events")
    func names() {
        #expect(ClientEvent.names["MESSAGES_DELETED"] == "bulk_message_deleted")
        #expect(ClientEvent.names["THREAD_CREATED"] == "conversation_created")
        #expect(ClientEvent.durable.contains("message_delivered"))
        #expect(!ClientEvent.durable.contains("typing"))
    }
}
