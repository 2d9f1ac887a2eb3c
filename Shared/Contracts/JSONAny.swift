import Foundation
import SocketIOProtocol

/// Any JSON value, for contracts that carry client data without knowing its shape (a stored
/// event's `data`). Numbers are `Double`, exact for integers up to 2^53.
public indirect enum JSONAny: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONAny])
    case object([String: JSONAny])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONAny].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONAny].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 9_007_199_254_740_992 {
                try container.encode(Int64(value))
            } else {
                try container.encode(value)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// Parses JSON text with the hand-written parser of ``JSONValue`` (strict RFC 8259, nesting
    /// up to 64 deep): Foundation's decoder, generic over `Codable`, took about 6 % of delivery's
    /// CPU for the events it reads.
    public static func parse(_ data: Data) throws -> JSONAny {
        JSONAny(try JSONValue.parse(String(decoding: data, as: UTF8.self)))
    }

    /// Compact JSON text (object keys sorted), written by hand like ``JSONValue/jsonText``.
    public var jsonText: String { JSONValue(self).jsonText }

    /// The same value (a ``JSONValue`` binary, which JSON text never holds, becomes `null`).
    public init(_ value: JSONValue) {
        switch value {
        case .null, .binary: self = .null
        case .bool(let bool): self = .bool(bool)
        case .number(let number): self = .number(number)
        case .string(let string): self = .string(string)
        case .array(let items): self = .array(items.map(JSONAny.init))
        case .object(let members): self = .object(members.mapValues(JSONAny.init))
        }
    }

    public subscript(key: String) -> JSONAny? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var int64Value: Int64? {
        if case .number(let value) = self, value == value.rounded() { return Int64(exactly: value) }
        return nil
    }
}

extension JSONValue {
    /// The same value.
    public init(_ value: JSONAny) {
        switch value {
        case .null: self = .null
        case .bool(let bool): self = .bool(bool)
        case .number(let number): self = .number(number)
        case .string(let string): self = .string(string)
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .object(let members): self = .object(members.mapValues(JSONValue.init))
        }
    }
}
