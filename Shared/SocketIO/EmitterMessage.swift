import Foundation

/// One message of the Socket.IO Redis adapter / `@socket.io/redis-emitter` wire format:
/// msgpack `[uid, {type, data: [event, ...args], nsp}, {rooms, except, flags}]` published on
/// `socket.io#<nsp>#` (or `socket.io#<nsp>#<room>#` when it targets exactly one room).
public struct EmitterMessage: Hashable, Sendable {
    /// The publisher; a server skips its own messages (it delivered them locally already).
    public var uid: String
    public var namespace: String
    public var event: String
    public var arguments: [JSONValue]
    public var rooms: [String]
    public var except: [String]
    /// Boolean flags of the broadcast (`volatile`, `compress`, ...); receivers ignore those they
    /// do not know.
    public var flags: [String: Bool]

    public init(
        uid: String, namespace: String = "/", event: String, arguments: [JSONValue], rooms: [String], except: [String] = [],
        flags: [String: Bool] = [:]
    ) {
        self.uid = uid
        self.namespace = namespace
        self.event = event
        self.arguments = arguments
        self.rooms = rooms
        self.except = except
        self.flags = flags
    }

    /// The channel the adapter publishes this message on.
    public var channel: String {
        let base = "socket.io#\(self.namespace)#"
        return self.rooms.count == 1 ? base + self.rooms[0] + "#" : base
    }

    /// The pattern a server subscribes to for `namespace`.
    public static func pattern(namespace: String = "/") -> String { "socket.io#\(namespace)#*" }

    /// The message's bytes, written directly (the arguments too: no msgpack value is built
    /// first); the same bytes as encoding the equivalent ``MessagePackValue``.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        MessagePackWriter.arrayHeader(3, into: &out)
        MessagePackWriter.string(self.uid, into: &out)
        MessagePackWriter.mapHeader(3, into: &out)
        MessagePackWriter.string("type", into: &out)
        MessagePackWriter.unsigned(2, into: &out)
        MessagePackWriter.string("data", into: &out)
        MessagePackWriter.arrayHeader(1 + self.arguments.count, into: &out)
        MessagePackWriter.string(self.event, into: &out)
        for argument in self.arguments { argument.writeMessagePack(into: &out) }
        MessagePackWriter.string("nsp", into: &out)
        MessagePackWriter.string(self.namespace, into: &out)
        MessagePackWriter.mapHeader(3, into: &out)
        MessagePackWriter.string("rooms", into: &out)
        MessagePackWriter.arrayHeader(self.rooms.count, into: &out)
        for room in self.rooms { MessagePackWriter.string(room, into: &out) }
        MessagePackWriter.string("except", into: &out)
        MessagePackWriter.arrayHeader(self.except.count, into: &out)
        for room in self.except { MessagePackWriter.string(room, into: &out) }
        MessagePackWriter.string("flags", into: &out)
        MessagePackWriter.mapHeader(self.flags.count, into: &out)
        for (name, value) in self.flags.sorted(by: { $0.key < $1.key }) {
            MessagePackWriter.string(name, into: &out)
            out.append(value ? 0xC3 : 0xC2)
        }
        return out
    }

    /// Whether `bytes` is a message that `uid` published, read from its first field alone. A
    /// server gets its own messages back from Redis and drops them; this spares it decoding the
    /// whole message (the event's arguments) first.
    public static func isPublished(by uid: String, _ bytes: [UInt8]) -> Bool {
        var uid = uid
        return uid.withUTF8 { uid -> Bool in
            // An array of 2 or 3 (fixarray), then the uid as a fixstr or a str 8.
            guard bytes.count > 2, bytes[0] == 0x92 || bytes[0] == 0x93 else { return false }
            let start: Int
            if uid.count < 32 {
                guard bytes[1] == 0xA0 | UInt8(uid.count) else { return false }
                start = 2
            } else if uid.count < 256 {
                guard bytes[1] == 0xD9, bytes[2] == UInt8(uid.count) else { return false }
                start = 3
            } else {
                return false
            }
            guard bytes.count >= start + uid.count else { return false }
            return bytes[start..<(start + uid.count)].elementsEqual(uid)
        }
    }

    /// The most msgpack values a published message may have: a hundred thousand, about 4 MB
    /// decoded, five times the largest event this system publishes (a message with 20 emoji,
    /// each from all members of a group of 1,000, the most `GROUP_MAX_MEMBERS` allows; fifteen
    /// times at the default 256). Past it the message is dropped: a megabyte of one-byte values
    /// is a million of them, about 40 MB decoded on every gateway (until the sixtieth session
    /// nothing bounded it; a review).
    static let maximumValues = 100_000

    /// Decodes a published message; nil for anything that is not an EVENT in this format.
    public init?(decoding bytes: [UInt8]) {
        guard let value = try? MessagePackValue.decode(bytes, maximumValues: Self.maximumValues),
            case .array(let parts) = value, parts.count >= 2,
            case .string(let uid) = parts[0], case .array(let data)? = parts[1]["data"], case .string(let event) = data.first
        else { return nil }
        let type = parts[1]["type"]
        guard type == .uint(2) || type == .int(2) || type == .uint(5) || type == .int(5) else { return nil }
        self.uid = uid
        self.namespace = parts[1]["nsp"].flatMap { if case .string(let nsp) = $0 { nsp } else { nil } } ?? "/"
        self.event = event
        self.arguments = data.dropFirst().map(JSONValue.init)
        let options = parts.count > 2 ? parts[2] : .map([])
        // A room that is not a string refuses the message: dropped, a list of them would come
        // to none, which is every socket.
        guard let rooms = Self.strings(options["rooms"]), let except = Self.strings(options["except"]) else { return nil }
        self.rooms = rooms
        self.except = except
        var flags: [String: Bool] = [:]
        if case .map(let pairs)? = options["flags"] {
            for pair in pairs {
                if case .string(let name) = pair.key, case .bool(let value) = pair.value { flags[name] = value }
            }
        }
        self.flags = flags
    }

    /// The strings of a list; [] when there is none, nil when it holds anything else.
    private static func strings(_ value: MessagePackValue?) -> [String]? {
        guard let value, value != .nil else { return [] }
        guard case .array(let items) = value else { return nil }
        var strings: [String] = []
        for item in items {
            guard case .string(let text) = item else { return nil }
            strings.append(text)
        }
        return strings
    }
}

extension JSONValue {
    /// Appends the value as msgpack, as notepack encodes JavaScript values: whole numbers below
    /// 2^53 as integers, other numbers as float 64, binaries as `bin`, object keys sorted.
    func writeMessagePack(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(0xC0)
        case .bool(let value): out.append(value ? 0xC3 : 0xC2)
        case .number(let value):
            if value == value.rounded(), abs(value) < 9_007_199_254_740_992 {
                if value >= 0 {
                    MessagePackWriter.unsigned(UInt64(value), into: &out)
                } else {
                    MessagePackWriter.integer(Int64(value), into: &out)
                }
            } else {
                MessagePackWriter.double(value, into: &out)
            }
        case .string(let value): MessagePackWriter.string(value, into: &out)
        case .binary(let bytes): MessagePackWriter.binary(bytes, into: &out)
        case .array(let items):
            MessagePackWriter.arrayHeader(items.count, into: &out)
            for item in items { item.writeMessagePack(into: &out) }
        case .object(let members):
            MessagePackWriter.mapHeader(members.count, into: &out)
            for (key, value) in members.sorted(by: { $0.key < $1.key }) {
                MessagePackWriter.string(key, into: &out)
                value.writeMessagePack(into: &out)
            }
        }
    }
}

extension JSONValue {
    /// `2026-12-05T00:00:00.000Z`.
    private static let dateFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    /// Msgpack as JSON, as a Socket.IO client would see it: dates become RFC 3339 strings.
    public init(_ value: MessagePackValue) {
        switch value {
        case .nil: self = .null
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .number(Double(number))
        case .uint(let number): self = .number(Double(number))
        case .float(let number): self = .number(Double(number))
        case .double(let number): self = .number(number)
        case .string(let text): self = .string(text)
        case .binary(let bytes): self = .binary(bytes)
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .map(let pairs):
            var members: [String: JSONValue] = [:]
            for pair in pairs {
                if case .string(let key) = pair.key { members[key] = JSONValue(pair.value) }
            }
            self = .object(members)
        case .ext:
            // A date within the years 1 to 9999 is its ISO 8601 text, as JSON.stringify writes
            // a Date; any other is null. One format style for all (until the sixtieth session an
            // ICU formatter was made for each date: a million of them in one 6 MB publish kept
            // the fan-out busy for minutes; a review).
            if let date = value.date, RFC3339.representable.contains(date.timeIntervalSince1970) {
                self = .string(Self.dateFormat.format(date))
            } else {
                self = .null
            }
        }
    }
}
