import Foundation
import Testing

@testable import SocketIOProtocol

@Suite("Engine.IO and Socket.IO packets")
struct SocketIOCodecTests {
    @Test("Engine.IO packets round-trip, and polling payloads split on the record separator")
    func engineIO() throws {
        let packets: [EngineIOPacket] = [
            .open(#"{"sid":"x"}"#), .close, .ping("probe"), .pong(""), .message("2[\"a\"]"), .binary([1, 2, 255]), .upgrade,
            .noop,
        ]
        for packet in packets { #expect(try EngineIOPacket.parse(packet.text) == packet) }
        let body = EngineIOPacket.payload([.message("hello"), .binary([0, 1]), .ping("")])
        #expect(body == "4hello\u{1e}bAAE=\u{1e}2")
        #expect(try EngineIOPacket.parsePayload(body) == [.message("hello"), .binary([0, 1]), .ping("")])
        #expect(throws: EngineIOProtocolError.self) { try EngineIOPacket.parse("9") }
        #expect(throws: EngineIOProtocolError.self) { try EngineIOPacket.parse("") }
        #expect(throws: EngineIOProtocolError.self) { try EngineIOPacket.parse("b!!!") }
    }

    @Test(
        "Socket.IO packets decode as the protocol's examples show",
        arguments: [
            ("0", SocketIOPacket(kind: .connect)),
            (
                "0/admin,{\"token\":\"123\"}",
                SocketIOPacket(kind: .connect, namespace: "/admin", data: .object(["token": .string("123")]))
            ),
            ("1/admin,", SocketIOPacket(kind: .disconnect, namespace: "/admin")),
            ("2[\"foo\"]", SocketIOPacket.event("foo", [])),
            (
                "2/admin,12[\"bar\",1,true]",
                SocketIOPacket.event("bar", [.number(1), .bool(true)], namespace: "/admin", ackID: 12)
            ),
            ("3/admin,13[\"bar\"]", SocketIOPacket.ack(13, [.string("bar")], namespace: "/admin")),
            (
                "4{\"message\":\"Not authorized\"}",
                SocketIOPacket(kind: .connectError, data: .object(["message": .string("Not authorized")]))
            ),
        ])
    func decode(text: String, expected: SocketIOPacket) throws {
        var decoder = SocketIODecoder()
        #expect(try decoder.receive(text: text) == expected)
        #expect(expected.encode().text == text)
    }

    @Test("a packet with more JSON values than the decoder's limit is refused; one at the limit is taken")
    func valueLimit() throws {
        var decoder = SocketIODecoder(maximumValues: 10)
        // The array, the name and eight numbers: ten values.
        #expect(try decoder.receive(text: #"2["x",1,2,3,4,5,6,7,8]"#)?.event?.arguments.count == 8)
        #expect(throws: SocketIOProtocolError.self) { try decoder.receive(text: #"2["x",[],[],[],[],[],[],[],[],[]]"#) }
        // The object, its key, the array and two numbers: five values.
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(#"{"a":[1,2]}"#, maximumValues: 4) }
        #expect(try JSONValue.parse(#"{"a":[1,2]}"#, maximumValues: 5) == .object(["a": .array([.number(1), .number(2)])]))
    }

    @Test("binary arguments travel as attachments and are put back in place")
    func binaryRoundTrip() throws {
        let packet = SocketIOPacket.event(
            "upload", [.object(["file": .binary([1, 2, 3]), "name": .string("a.png")]), .binary([9])], ackID: 4)
        let (text, attachments) = packet.encode()
        #expect(text.hasPrefix("52-4[\"upload\""))
        #expect(attachments == [[1, 2, 3], [9]])
        var decoder = SocketIODecoder()
        #expect(try decoder.receive(text: text) == nil)
        #expect(try decoder.receive(binary: attachments[0]) == nil)
        let decoded = try #require(try decoder.receive(binary: attachments[1]))
        #expect(decoded.kind == .binaryEvent)
        #expect(decoded.data == packet.data)
        #expect(decoded.event?.name == "upload")
    }

    @Test("a binary packet awaits its attachments until the last has come")
    func awaitingAttachments() throws {
        var decoder = SocketIODecoder()
        let header = #"52-["upload",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        #expect(!decoder.isAwaitingAttachments)
        #expect(try decoder.receive(text: header) == nil)
        #expect(decoder.isAwaitingAttachments)
        #expect(try decoder.receive(binary: [1]) == nil)
        #expect(decoder.isAwaitingAttachments)
        #expect(try decoder.receive(binary: [2])?.event?.name == "upload")
        #expect(!decoder.isAwaitingAttachments)
    }

    @Test(
        "malformed packets are refused, never crash",
        arguments: [
            "", "9", "2", "2{\"a\":1}", "2[1]", "2[\"a\"", "3[\"x\"]", "1{\"a\":1}", "4[1]", "0[1]", "5-[\"a\"]", "599-[\"a\"]",
            "51-[\"a\",{\"_placeholder\":true,\"num\":7}]", "2999999999999999999[\"a\"]",
            "51-[\"x\",{\"_placeholder\":true,\"num\":1e300}]", "51-[\"x\",{\"_placeholder\":true,\"num\":-1e400}]",
            "51-[\"x\",{\"_placeholder\":true,\"num\":0.5}]",
            String(repeating: "[", count: 500) + "\"x\"" + String(repeating: "]", count: 500),
        ])
    func malformed(text: String) throws {
        var decoder = SocketIODecoder()
        do {
            if try decoder.receive(text: text) == nil {
                // A binary packet: its attachment must not make it valid.
                #expect(throws: SocketIOProtocolError.self) { try decoder.receive(binary: [1]) }
            } else {
                Issue.record("accepted \(text)")
            }
        } catch {
            // Refused with a SocketIOProtocolError (the decoder's typed throws guarantee the type).
        }
    }

    @Test("JSON text round-trips strings with escapes, surrogate pairs and numbers")
    func json() throws {
        let text = #"{"a":[1,-2.5,1e3,true,null],"b":"q\"\\\/\n\u00e9\ud83d\ude00"}"#
        let value = try JSONValue.parse(text)
        #expect(value["b"] == .string("q\"\\/\né😀"))
        #expect(try JSONValue.parse(value.jsonText) == value)
        #expect(value.jsonText == #"{"a":[1,-2.5,1000,true,null],"b":"q\"\\/\né😀"}"#)
        for bad in [
            "01", "1.", "-", "\"\u{01}\"", "[1,]", "{\"a\"}", "tru", "\"\\x\"", #""\ud83d\uzzzz""#, #""\u+0a1""#, #""\u00""#,
            #""\u 0a1""#, #""\u00g1""#,
        ] {
            #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(bad) }
        }
        // Hex digits of either case; 4,000 escapes of a control character are one string.
        #expect(try JSONValue.parse(#""\u00E9\u00e9\uFFFD""#) == .string("éé\u{FFFD}"))
        let escaped = "\"" + String(repeating: #"\u0001"#, count: 4000) + "\""
        #expect(try JSONValue.parse(escaped) == .string(String(repeating: "\u{01}", count: 4000)))
    }

    @Test("a number past a double's range is the largest double of its sign, never an infinity")
    func hugeNumbers() throws {
        let value = try JSONValue.parse("[1e400,-1e400," + String(repeating: "9", count: 400) + "]")
        #expect(
            value
                == .array([
                    .number(.greatestFiniteMagnitude), .number(-.greatestFiniteMagnitude), .number(.greatestFiniteMagnitude),
                ]))
        #expect(!value.jsonText.contains("null"))
    }

    @Test("binaries become the placeholders a binary packet carries, numbered in order")
    func binaryPlaceholders() {
        let value: JSONValue = .object(["a": .array([.string("x"), .binary([1]), .binary([2])])])
        let placeholder = { (n: Double) -> JSONValue in .object(["_placeholder": .bool(true), "num": .number(n)]) }
        #expect(value.withBinaryPlaceholders == .object(["a": .array([.string("x"), placeholder(0), placeholder(1)])]))
    }

    @Test("a surrogate escape without its other half is U+FFFD, and the text around it is kept")
    func loneSurrogates() throws {
        let cases: [(String, String)] = [
            (#""cut \ud83d""#, "cut \u{FFFD}"),
            (#""\ude00 first""#, "\u{FFFD} first"),
            (#""\ud83d\u0041""#, "\u{FFFD}A"),
            (#""\ud83d\ud83d\ude00""#, "\u{FFFD}😀"),
            (#""\ud83dx""#, "\u{FFFD}x"),
        ]
        for (text, expected) in cases {
            #expect(try JSONValue.parse(text) == .string(expected), "\(text)")
        }
    }

    @Test("the text of a top-level member is kept exactly as it came")
    func keptMemberText() throws {
        let text = #"{"a": {"args":[9]} ,"args" :  [ 1, {"b":"\u00e9"} ] ,"z":[2]}"#
        let (value, kept) = try JSONValue.parse(text, keepingTextOf: "args")
        #expect(kept == #"[ 1, {"b":"\u00e9"} ]"#)
        #expect(value == (try JSONValue.parse(text)))
        #expect(try JSONValue.parse(#"{"a":1}"#, keepingTextOf: "args").memberText == nil)
        #expect(try JSONValue.parse(#"[{"args":1}]"#, keepingTextOf: "args").memberText == nil)
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(#"{"args":[1}"#, keepingTextOf: "args") }
    }
}

@Suite("MessagePack")
struct MessagePackTests {
    @Test("values round-trip in their smallest encodings")
    func roundTrip() throws {
        let values: [MessagePackValue] = [
            .nil, .bool(true), .uint(0), .uint(127), .uint(128), .uint(70_000), .uint(UInt64.max), .int(-1), .int(-33),
            .int(-200),
            .int(-40_000), .int(Int64.min), .double(1.5), .float(2.5), .string(""), .string(String(repeating: "é", count: 40)),
            .binary([0, 255]), .binary([UInt8](repeating: 7, count: 70_000)), .array((0..<20).map { .uint(UInt64($0)) }),
            .map([MessagePackPair(.string("rooms"), .array([.string("user:1")])), MessagePackPair(.string("flags"), .map([]))]),
            .ext(type: 5, data: [1, 2, 3]),
        ]
        for value in values { #expect(try MessagePackValue.decode(value.encoded()) == value) }
        #expect(MessagePackValue.uint(127).encoded() == [0x7F])
        #expect(MessagePackValue.int(-1).encoded() == [0xFF])
        #expect(MessagePackValue.string("a").encoded() == [0xA1, 0x61])
    }

    @Test("dates use the Timestamp extension exactly as notepack writes them")
    func timestamps() throws {
        let date = try #require(ISO8601DateFormatter().date(from: "2000-06-13T00:00:00Z"))
        #expect(MessagePackValue.timestamp(date).encoded() == [0xD6, 0xFF, 0x39, 0x45, 0x79, 0x80])
        let precise = Date(timeIntervalSince1970: 1_795_000_000.125)
        let decoded = try #require(try MessagePackValue.decode(MessagePackValue.timestamp(precise).encoded()).date)
        #expect(abs(decoded.timeIntervalSince(precise)) < 0.000_001)
    }

    @Test("a server recognizes its own emitter messages from their first field")
    func ownMessages() {
        for uid in ["gw-1a2b", String(repeating: "u", count: 40)] {
            let message = EmitterMessage(uid: uid, event: "news", arguments: [.string("x")], rooms: ["user:1"]).encoded()
            #expect(EmitterMessage.isPublished(by: uid, message))
            #expect(!EmitterMessage.isPublished(by: uid + "x", message))
            #expect(!EmitterMessage.isPublished(by: String(uid.dropLast()), message))
            #expect(!EmitterMessage.isPublished(by: "other", message))
            #expect(EmitterMessage(decoding: message)?.uid == uid)
        }
        #expect(!EmitterMessage.isPublished(by: "gw", [0x93]))
        #expect(!EmitterMessage.isPublished(by: "gw", [0x93, 0xA2, 0x67]))
    }

    /// A room dropped for not being a string could leave none, which is every socket (the
    /// forty-sixth session's review; pushes from RabbitMQ were refused so since the forty-third).
    @Test("an emitter message whose rooms are not all strings is refused; one without rooms is to everyone")
    func roomsMustBeStrings() {
        func message(rooms: MessagePackValue?) -> [UInt8] {
            let packet = MessagePackValue.map([
                MessagePackPair(.string("type"), .uint(2)), MessagePackPair(.string("data"), .array([.string("news")])),
                MessagePackPair(.string("nsp"), .string("/")),
            ])
            let options = MessagePackValue.map(rooms.map { [MessagePackPair(.string("rooms"), $0)] } ?? [])
            return MessagePackValue.array([.string("gw"), packet, options]).encoded()
        }
        #expect(EmitterMessage(decoding: message(rooms: .array([.string("user:1")])))?.rooms == ["user:1"])
        #expect(EmitterMessage(decoding: message(rooms: .array([.uint(123)]))) == nil)
        #expect(EmitterMessage(decoding: message(rooms: .array([.string("user:1"), .uint(1)]))) == nil)
        #expect(EmitterMessage(decoding: message(rooms: .string("user:1"))) == nil)
        #expect(EmitterMessage(decoding: message(rooms: nil))?.rooms == [])
    }

    /// A megabyte of empty arrays is a million values, about 40 MB decoded: an emitter message
    /// of more than ``EmitterMessage/maximumValues`` is dropped (the sixtieth session's review).
    @Test("a document past its count of values is refused, however few bytes it takes")
    func valueBudget() throws {
        let count = 1_000_000
        let manyArrays = [0xDD] + UInt32(count).bigEndianBytes + [UInt8](repeating: 0x90, count: count)
        #expect(throws: MessagePackError.self) { try MessagePackValue.decode(manyArrays, maximumValues: 100_000) }
        #expect(try MessagePackValue.decode(manyArrays) == .array(Array(repeating: .array([]), count: count)))
        #expect(try MessagePackValue.decode([0x92, 0x01, 0x02], maximumValues: 3) == .array([.uint(1), .uint(2)]))
        #expect(throws: MessagePackError.self) { try MessagePackValue.decode([0x92, 0x01, 0x02], maximumValues: 2) }
        func message(_ arguments: [MessagePackValue]) -> [UInt8] {
            let packet = MessagePackValue.map([
                MessagePackPair(.string("type"), .uint(2)),
                MessagePackPair(.string("data"), .array([.string("news")] + arguments)),
            ])
            return MessagePackValue.array([.string("gw"), packet, .map([])]).encoded()
        }
        #expect(EmitterMessage(decoding: message(Array(repeating: .array([]), count: 99_000))) != nil)
        #expect(EmitterMessage(decoding: message(Array(repeating: .array([]), count: 100_000))) == nil)
    }

    @Test("a date in an emitter message is its ISO 8601 text, and null outside the years 1 to 9999")
    func emittedDates() throws {
        func argument(_ value: MessagePackValue) -> JSONValue? {
            let packet = MessagePackValue.map([
                MessagePackPair(.string("type"), .uint(2)), MessagePackPair(.string("data"), .array([.string("news"), value])),
            ])
            return EmitterMessage(decoding: MessagePackValue.array([.string("gw"), packet]).encoded())?.arguments.first
        }
        #expect(argument(.timestamp(Date(timeIntervalSince1970: 1_795_000_000.125))) == .string("2026-11-18T11:06:40.125Z"))
        // 12-byte timestamps: the largest seconds a signed 64-bit field holds, and the smallest.
        for seconds in [Int64.max, Int64.min] {
            let data = UInt32(0).bigEndianBytes + UInt64(bitPattern: seconds).bigEndianBytes
            #expect(argument(.ext(type: -1, data: data)) == .null)
        }
    }

    @Test(
        "hostile input fails cleanly",
        arguments: [
            [0xC1], [0xDD, 0xFF, 0xFF, 0xFF, 0xFF], [0xDB, 0x00, 0x00, 0x10, 0x00, 0x61], [0xA2, 0xFF, 0xFE], [0x92, 0x01],
            [0x01, 0x02],
            [UInt8](repeating: 0x91, count: 1000) + [0xC0],
        ] as [[UInt8]])
    func hostile(bytes: [UInt8]) {
        #expect(throws: MessagePackError.self) { try MessagePackValue.decode(bytes) }
    }
}
