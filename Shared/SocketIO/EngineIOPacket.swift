import Foundation

/// An Engine.IO protocol v4 packet: a type digit and its data; binary messages travel as
/// binary WebSocket frames, or as `b<base64>` in HTTP long-polling payloads, where packets
/// are joined by the record separator `\u{1e}`.
public enum EngineIOPacket: Hashable, Sendable {
    case open(String)
    case close
    case ping(String)
    case pong(String)
    case message(String)
    case binary([UInt8])
    case upgrade
    case noop

    static let separator: Character = "\u{1e}"

    /// The text form (WebSocket text frame, or one polling record); binaries as `b<base64>`.
    public var text: String {
        switch self {
        case .open(let handshake): "0" + handshake
        case .close: "1"
        case .ping(let data): "2" + data
        case .pong(let data): "3" + data
        case .message(let data): "4" + data
        case .binary(let bytes): "b" + Data(bytes).base64EncodedString()
        case .upgrade: "5"
        case .noop: "6"
        }
    }

    /// The packet's size as sent, in bytes (a binary packet as its bytes, before base64).
    public var byteCount: Int {
        switch self {
        case .open(let data), .ping(let data), .pong(let data), .message(let data): 1 + data.utf8.count
        case .binary(let bytes): 1 + bytes.count
        case .close, .upgrade, .noop: 1
        }
    }

    /// Parses one text packet (or a `b<base64>` polling record).
    public static func parse(_ text: some StringProtocol) throws(EngineIOProtocolError) -> EngineIOPacket {
        guard let first = text.first else { throw EngineIOProtocolError("empty packet") }
        let data = String(text.dropFirst())
        switch first {
        case "0": return .open(data)
        case "1": return .close
        case "2": return .ping(data)
        case "3": return .pong(data)
        case "4": return .message(data)
        case "5": return .upgrade
        case "6": return .noop
        case "b":
            guard let bytes = Data(base64Encoded: data) else { throw EngineIOProtocolError("bad base64 payload") }
            return .binary([UInt8](bytes))
        default: throw EngineIOProtocolError("unknown packet type")
        }
    }

    /// Splits an HTTP long-polling body into its packets.
    public static func parsePayload(_ body: String) throws(EngineIOProtocolError) -> [EngineIOPacket] {
        var packets: [EngineIOPacket] = []
        for record in body.split(separator: Self.separator, omittingEmptySubsequences: false) {
            packets.append(try Self.parse(record))
        }
        return packets
    }

    /// Joins packets into one HTTP long-polling body.
    public static func payload(_ packets: [EngineIOPacket]) -> String {
        packets.map(\.text).joined(separator: String(Self.separator))
    }
}

/// Why an Engine.IO packet was refused; the connection that sent it is closed.
public struct EngineIOProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "invalid Engine.IO packet: \(self.reason)" }

    /// A request for a session that closed meanwhile.
    public static let sessionClosed = EngineIOProtocolError("session closed")
}
