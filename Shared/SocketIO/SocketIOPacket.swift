/// A Socket.IO protocol v5 packet:
/// `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`, with binary values sent
/// as separate attachments and referenced by `{"_placeholder":true,"num":n}`.
public struct SocketIOPacket: Hashable, Sendable {
    public enum Kind: Int, Sendable {
        case connect = 0
        case disconnect = 1
        case event = 2
        case ack = 3
        case connectError = 4
        case binaryEvent = 5
        case binaryAck = 6
    }

    public var kind: Kind
    public var namespace: String
    public var ackID: Int?
    /// With binaries in place (as `.binary`) once decoded.
    public var data: JSONValue?

    public init(kind: Kind, namespace: String = "/", ackID: Int? = nil, data: JSONValue? = nil) {
        self.kind = kind
        self.namespace = namespace
        self.ackID = ackID
        self.data = data
    }

    /// An event: `[name, ...arguments]`.
    public static func event(_ name: String, _ arguments: [JSONValue], namespace: String = "/", ackID: Int? = nil)
        -> SocketIOPacket
    {
        SocketIOPacket(kind: .event, namespace: namespace, ackID: ackID, data: .array([.string(name)] + arguments))
    }

    /// An acknowledgement carrying `arguments`.
    public static func ack(_ id: Int, _ arguments: [JSONValue], namespace: String = "/") -> SocketIOPacket {
        SocketIOPacket(kind: .ack, namespace: namespace, ackID: id, data: .array(arguments))
    }

    /// The event name and arguments of an event packet.
    public var event: (name: String, arguments: [JSONValue])? {
        guard self.kind == .event || self.kind == .binaryEvent, case .array(let items) = self.data,
            case .string(let name) = items.first
        else { return nil }
        return (name, Array(items.dropFirst()))
    }

    /// The text frame and the binary attachments that follow it. Events and acks that hold
    /// binaries become BINARY_EVENT / BINARY_ACK.
    public func encode() -> (text: String, attachments: [[UInt8]]) {
        var attachments: [[UInt8]] = []
        let data = self.data.map { Self.extractBinaries($0, into: &attachments) }
        var kind = self.kind
        if !attachments.isEmpty {
            if kind == .event { kind = .binaryEvent }
            if kind == .ack { kind = .binaryAck }
        }
        var text = String(kind.rawValue)
        if kind == .binaryEvent || kind == .binaryAck { text += "\(attachments.count)-" }
        if self.namespace != "/" { text += self.namespace + "," }
        if let ackID = self.ackID { text += String(ackID) }
        if let data { data.write(to: &text) }
        return (text, attachments)
    }

    fileprivate static func extractBinaries(_ value: JSONValue, into attachments: inout [[UInt8]]) -> JSONValue {
        switch value {
        case .binary(let bytes):
            attachments.append(bytes)
            return .object(["_placeholder": .bool(true), "num": .number(Double(attachments.count - 1))])
        case .array(let items): return .array(items.map { extractBinaries($0, into: &attachments) })
        case .object(let members): return .object(members.mapValues { extractBinaries($0, into: &attachments) })
        default: return value
        }
    }
}

extension JSONValue {
    /// This value with each binary replaced by its placeholder, `{"_placeholder": true, "num": n}`,
    /// as a binary packet carries it on the wire.
    public var withBinaryPlaceholders: JSONValue {
        var attachments: [[UInt8]] = []
        return SocketIOPacket.extractBinaries(self, into: &attachments)
    }
}

/// Why a Socket.IO packet was refused; the connection that sent it is closed.
public struct SocketIOProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    /// The packet keeps to the protocol but is past a limit of this server (more attachments
    /// than ``SocketIODecoder/maximumAttachments``): a client may well send it, and is not told
    /// to go away for good.
    public var isLimit: Bool
    public init(_ reason: String, isLimit: Bool = false) {
        self.reason = reason
        self.isLimit = isLimit
    }
    public var description: String { "invalid Socket.IO packet: \(self.reason)" }
}

/// Decodes Socket.IO packets from a connection's Engine.IO messages, waiting for the
/// attachments of binary packets. One per connection.
public struct SocketIODecoder: Sendable {
    /// The most attachments one packet may announce. The default is above what any command of
    /// the gateway takes (`add_attachments`: 20 files), so that a command over its own limit gets
    /// its error ack; only a packet past this one closes the connection.
    public var maximumAttachments: Int
    /// The most JSON values one packet's payload may have (``JSONValue/parse(_:maximumDepth:maximumValues:)``):
    /// past it the packet is refused as malformed.
    public var maximumValues: Int
    /// The JSON values of the last packet whose text was received (a binary packet's, from its
    /// header): with its text's size, a measure of what it takes in memory parsed.
    public private(set) var lastPacketValues = 0
    private var pending: (packet: SocketIOPacket, expected: Int, attachments: [[UInt8]])?

    public init(maximumAttachments: Int = 32, maximumValues: Int = .max) {
        self.maximumAttachments = maximumAttachments
        self.maximumValues = maximumValues
    }

    /// A binary packet's header came and some of its attachments are still to come.
    public var isAwaitingAttachments: Bool { self.pending != nil }

    /// The namespace of the binary packet whose attachments are still to come.
    public var awaitedNamespace: String? { self.pending?.packet.namespace }

    /// A text message: the packet, or nil while its attachments are still to come.
    public mutating func receive(text: String) throws(SocketIOProtocolError) -> SocketIOPacket? {
        guard self.pending == nil else { throw SocketIOProtocolError("text packet while waiting for binary attachments") }
        let (packet, attachments, values) = try Self.parseHeader(
            text, maximumAttachments: self.maximumAttachments, maximumValues: self.maximumValues)
        self.lastPacketValues = values
        if attachments == 0 { return packet }
        self.pending = (packet, attachments, [])
        return nil
    }

    /// A binary message: an attachment of the packet under way.
    public mutating func receive(binary: [UInt8]) throws(SocketIOProtocolError) -> SocketIOPacket? {
        guard var pending = self.pending else { throw SocketIOProtocolError("unexpected binary attachment") }
        pending.attachments.append(binary)
        guard pending.attachments.count == pending.expected else {
            self.pending = pending
            return nil
        }
        self.pending = nil
        var packet = pending.packet
        packet.data = try packet.data.map { value throws(SocketIOProtocolError) in
            try Self.reassemble(value, pending.attachments)
        }
        return packet
    }

    static func parseHeader(
        _ text: String, maximumAttachments: Int, maximumValues: Int = .max
    ) throws(SocketIOProtocolError) -> (SocketIOPacket, attachments: Int, values: Int) {
        var rest = Substring(text)
        guard let first = rest.first, let digit = first.wholeNumberValue, let kind = SocketIOPacket.Kind(rawValue: digit) else {
            throw SocketIOProtocolError("unknown packet type")
        }
        rest = rest.dropFirst()
        var attachments = 0
        if kind == .binaryEvent || kind == .binaryAck {
            guard let dash = rest.firstIndex(of: "-"), let count = Int(rest[..<dash]), count >= 1 else {
                throw SocketIOProtocolError("bad attachment count")
            }
            guard count <= maximumAttachments else {
                throw SocketIOProtocolError("more than \(maximumAttachments) attachments", isLimit: true)
            }
            attachments = count
            rest = rest[rest.index(after: dash)...]
        }
        var namespace = "/"
        if rest.first == "/" {
            let end = rest.firstIndex(of: ",") ?? rest.endIndex
            namespace = String(rest[..<end])
            guard namespace.count <= 256 else { throw SocketIOProtocolError("namespace too long") }
            rest = end == rest.endIndex ? rest[end...] : rest[rest.index(after: end)...]
        }
        var ackID: Int?
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        if !digits.isEmpty {
            guard digits.count <= 15, let id = Int(digits) else { throw SocketIOProtocolError("bad ack id") }
            ackID = id
            rest = rest.dropFirst(digits.count)
        }
        var data: JSONValue?
        var values = 0
        if !rest.isEmpty {
            do {
                (data, values) = try JSONValue.parseCounting(rest, maximumValues: maximumValues)
            } catch {
                throw SocketIOProtocolError("payload is not JSON, or has too many values")
            }
        }
        let packet = SocketIOPacket(kind: kind, namespace: namespace, ackID: ackID, data: data)
        try Self.validate(packet)
        return (packet, attachments, values)
    }

    /// The shape rules of the protocol for each packet type.
    static func validate(_ packet: SocketIOPacket) throws(SocketIOProtocolError) {
        switch packet.kind {
        case .connect:
            if let data = packet.data, case .object = data {
            } else if packet.data != nil {
                throw SocketIOProtocolError("CONNECT payload must be an object")
            }
        case .disconnect:
            guard packet.data == nil else { throw SocketIOProtocolError("DISCONNECT has no payload") }
        case .event, .binaryEvent:
            guard case .array(let items) = packet.data, case .string = items.first else {
                throw SocketIOProtocolError("EVENT payload must be an array starting with the event name")
            }
        case .ack, .binaryAck:
            guard packet.ackID != nil, case .array = packet.data else {
                throw SocketIOProtocolError("ACK needs an id and an array payload")
            }
        case .connectError:
            guard case .object = packet.data else { throw SocketIOProtocolError("CONNECT_ERROR payload must be an object") }
        }
    }

    static func reassemble(_ value: JSONValue, _ attachments: [[UInt8]]) throws(SocketIOProtocolError) -> JSONValue {
        switch value {
        case .object(let members):
            if members["_placeholder"] == .bool(true), case .number(let number) = members["num"] {
                // `Int(exactly:)`: `Int(_:)` traps for 1e300 or infinity, which any client may send.
                guard let index = Int(exactly: number), attachments.indices.contains(index) else {
                    throw SocketIOProtocolError("placeholder refers to a missing attachment")
                }
                return .binary(attachments[index])
            }
            var result: [String: JSONValue] = [:]
            for (key, member) in members { result[key] = try reassemble(member, attachments) }
            return .object(result)
        case .array(let items):
            var result: [JSONValue] = []
            for item in items { result.append(try reassemble(item, attachments)) }
            return .array(result)
        default:
            return value
        }
    }
}
