import Foundation
import Testing

@testable import SocketIOProtocol

/// Property tests in the spirit of fuzzing, deterministic so they can run in every `make test`:
/// hundreds of thousands of mutated inputs (bit flips, truncations, duplications, random bytes)
/// derived from valid samples go into the Engine.IO, Socket.IO, JSON and MessagePack decoders,
/// which must either decode or throw, never crash or hang; and random values must survive an
/// encode / decode round trip.
@Suite("Decoders under mutated input")
struct DecoderFuzzTests {
    /// A small, seedable generator (SplitMix64), so a failure can be replayed.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            self.state &+= 0x9E37_79B9_7F4A_7C15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func mutate(_ sample: [UInt8], using generator: inout Generator) -> [UInt8] {
        var bytes = sample
        for _ in 0..<Int.random(in: 1...4, using: &generator) {
            switch Int.random(in: 0..<5, using: &generator) {
            case 0 where !bytes.isEmpty:
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
            case 1 where !bytes.isEmpty:
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &generator))
            case 2 where !bytes.isEmpty:
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                bytes.insert(contentsOf: bytes[index...].prefix(8), at: index)
            case 3:
                bytes.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
            default:
                bytes = (0..<Int.random(in: 0...32, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
        }
        return bytes
    }

    static let socketIOSamples = [
        "0", #"0{"token":"abc"}"#, "1", #"2["message",{"a":[1,2,{"b":null}]}]"#, #"21["ack",true]"#, #"31[{"ok":true}]"#,
        #"51-["upload",{"_placeholder":true,"num":0}]"#, #"4{"message":"no"}"#, "0/custom,", #"2/custom,3["x"]"#,
    ]

    @Test("the Socket.IO and JSON decoders refuse or accept mutated packets without crashing")
    func socketIO() {
        var generator = Generator(state: 0x5EED_0001)
        var accepted = 0
        for _ in 0..<60_000 {
            let sample = Array(Self.socketIOSamples.randomElement(using: &generator)!.utf8)
            let text = String(decoding: Self.mutate(sample, using: &generator), as: UTF8.self)
            var decoder = SocketIODecoder()
            if (try? decoder.receive(text: text)) != nil { accepted += 1 }
            _ = try? decoder.receive(binary: [1, 2, 3])
        }
        #expect(accepted > 0)
    }

    @Test("the Engine.IO decoder refuses or accepts mutated payloads without crashing")
    func engineIO() {
        var generator = Generator(state: 0x5EED_0002)
        let samples = ["0{}", "2", "3probe", "4hello", "bAQID", "5", "6", "4a\u{1e}4b\u{1e}2", "1"]
        for _ in 0..<60_000 {
            let sample = Array(samples.randomElement(using: &generator)!.utf8)
            _ = try? EngineIOPacket.parsePayload(String(decoding: Self.mutate(sample, using: &generator), as: UTF8.self))
        }
    }

    @Test("the MessagePack decoder refuses or accepts mutated bytes without crashing")
    func messagePack() {
        var generator = Generator(state: 0x5EED_0003)
        let samples = [
            EmitterMessage(
                uid: "emitter", event: "news", arguments: [.object(["a": .array([.number(1), .binary([9])])])], rooms: ["r"]
            )
            .encoded(),
            MessagePackValue.timestamp(Date(timeIntervalSince1970: 1_795_000_000.5)).encoded(),
            MessagePackValue.array([.int(-70_000), .double(1.5), .string(String(repeating: "x", count: 40))]).encoded(),
        ]
        for _ in 0..<60_000 {
            let bytes = Self.mutate(samples.randomElement(using: &generator)!, using: &generator)
            _ = try? MessagePackValue.decode(bytes)
            _ = EmitterMessage(decoding: bytes)
            _ = EmitterMessage.isPublished(by: "emitter", bytes)
        }
    }

    static func randomJSON(depth: Int, using generator: inout Generator) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 8), using: &generator) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2: return .number(Double(Int.random(in: -1_000_000...1_000_000, using: &generator)) / 8)
        case 3:
            return .string(
                String(
                    (0..<Int.random(in: 0...12, using: &generator)).map { _ in
                        Character(Unicode.Scalar(UInt32.random(in: 0x20...0x2FF, using: &generator))!)
                    }))
        case 4:
            return .binary(
                (0..<Int.random(in: 0...6, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        case 5, 6:
            return .array(
                (0..<Int.random(in: 0...4, using: &generator)).map { _ in randomJSON(depth: depth + 1, using: &generator) })
        default:
            var members: [String: JSONValue] = [:]
            for index in 0..<Int.random(in: 0...4, using: &generator) {
                members["k\(index)"] = randomJSON(depth: depth + 1, using: &generator)
            }
            return .object(members)
        }
    }

    @Test("emitter messages are written directly as the bytes of their msgpack values")
    func emitterMessagesWrittenDirectly() {
        var generator = Generator(state: 0x5EED_0005)
        let edges: [JSONValue] = [
            .number(9_007_199_254_740_991), .number(9_007_199_254_740_992), .number(-9_007_199_254_740_991), .number(-0.5),
            .number(-129), .number(-32), .number(-33), .number(65_536), .number(4_294_967_296), .number(1e300), .number(-0.0),
            .string(String(repeating: "é", count: 20)), .string(String(repeating: "x", count: 300)),
            .string(String(repeating: "y", count: 70_000)), .array((0..<20).map { .number(Double($0)) }),
            .object(Dictionary(uniqueKeysWithValues: (0..<20).map { ("key\($0)", JSONValue.bool($0 % 2 == 0)) })),
        ]
        var cases = edges.map { [$0] }
        for _ in 0..<2_000 {
            cases.append((0..<Int.random(in: 0...3, using: &generator)).map { _ in Self.randomJSON(depth: 0, using: &generator) })
        }
        for arguments in cases {
            let message = EmitterMessage(
                uid: "gw-1", event: "message_created", arguments: arguments, rooms: ["user:1", "user:2"], except: ["x"],
                flags: ["redelivery": true, "compress": false])
            let value = MessagePackValue.array([
                .string(message.uid),
                .map([
                    MessagePackPair(.string("type"), .uint(2)),
                    MessagePackPair(
                        .string("data"), .array([.string(message.event)] + arguments.map(MessagePackValue.init(reference:)))),
                    MessagePackPair(.string("nsp"), .string("/")),
                ]),
                .map([
                    MessagePackPair(.string("rooms"), .array([.string("user:1"), .string("user:2")])),
                    MessagePackPair(.string("except"), .array([.string("x")])),
                    MessagePackPair(
                        .string("flags"),
                        .map([
                            MessagePackPair(.string("compress"), .bool(false)),
                            MessagePackPair(.string("redelivery"), .bool(true)),
                        ])),
                ]),
            ])
            #expect(message.encoded() == value.encoded())
        }
    }

    @Test("random values round-trip through Socket.IO packets (binaries as attachments) and MessagePack")
    func roundTrips() throws {
        var generator = Generator(state: 0x5EED_0004)
        for _ in 0..<3_000 {
            let argument = Self.randomJSON(depth: 0, using: &generator)
            let packet = SocketIOPacket.event("e", [argument], ackID: Int.random(in: 0...1000, using: &generator))
            let (text, attachments) = packet.encode()
            var decoder = SocketIODecoder(maximumAttachments: 1000)
            var decoded = try decoder.receive(text: text)
            for attachment in attachments { decoded = try decoder.receive(binary: attachment) }
            #expect(decoded?.data == packet.data)
            var bytes: [UInt8] = []
            argument.writeMessagePack(into: &bytes)
            #expect(JSONValue(try MessagePackValue.decode(bytes)) == argument)
        }
    }
}

extension MessagePackValue {
    /// JSON as msgpack, value by value, as notepack encodes JavaScript values: the reference
    /// the directly written bytes are checked against.
    fileprivate init(reference json: JSONValue) {
        switch json {
        case .null: self = .nil
        case .bool(let value): self = .bool(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 9_007_199_254_740_992 {
                self = value >= 0 ? .uint(UInt64(value)) : .int(Int64(value))
            } else {
                self = .double(value)
            }
        case .string(let value): self = .string(value)
        case .binary(let bytes): self = .binary(bytes)
        case .array(let items): self = .array(items.map(MessagePackValue.init(reference:)))
        case .object(let members):
            self = .map(
                members.sorted { $0.key < $1.key }.map { MessagePackPair(.string($0.key), MessagePackValue(reference: $0.value)) }
            )
        }
    }
}
