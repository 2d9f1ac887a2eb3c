import Foundation

/// A MessagePack value, as the Socket.IO Redis adapter and `@socket.io/redis-emitter` exchange
/// them (notepack.io): maps keep their order, dates use the Timestamp extension (type -1).
public indirect enum MessagePackValue: Hashable, Sendable {
    case `nil`
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case float(Float)
    case double(Double)
    case string(String)
    case binary([UInt8])
    case array([MessagePackValue])
    case map([MessagePackPair])
    case ext(type: Int8, data: [UInt8])

    /// The Timestamp extension (type -1) for a date, as notepack writes `Date` objects.
    public static func timestamp(_ date: Date) -> MessagePackValue {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let nanoseconds = UInt32(((date.timeIntervalSince1970 - Double(seconds)) * 1e9).rounded().clamped(to: 0...999_999_999))
        if nanoseconds == 0, seconds >= 0, seconds <= Int64(UInt32.max) {
            return .ext(type: -1, data: UInt32(seconds).bigEndianBytes)
        }
        if seconds >= 0, seconds < (1 << 34) {
            let packed = (UInt64(nanoseconds) << 34) | UInt64(seconds)
            return .ext(type: -1, data: packed.bigEndianBytes)
        }
        return .ext(type: -1, data: nanoseconds.bigEndianBytes + UInt64(bitPattern: seconds).bigEndianBytes)
    }

    /// The date of a Timestamp extension value.
    public var date: Date? {
        guard case .ext(-1, let data) = self else { return nil }
        switch data.count {
        case 4:
            return Date(timeIntervalSince1970: Double(UInt32(bigEndian: data)))
        case 8:
            let packed = UInt64(bigEndian: data)
            return Date(timeIntervalSince1970: Double(packed & 0x3_FFFF_FFFF) + Double(packed >> 34) / 1e9)
        case 12:
            let nanoseconds = UInt32(bigEndian: Array(data[0..<4]))
            let seconds = Int64(bitPattern: UInt64(bigEndian: Array(data[4..<12])))
            return Date(timeIntervalSince1970: Double(seconds) + Double(nanoseconds) / 1e9)
        default:
            return nil
        }
    }

    public subscript(key: String) -> MessagePackValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.key == .string(key) }?.value
    }
}

/// One key and value of a MessagePack map.
public struct MessagePackPair: Hashable, Sendable {
    public var key: MessagePackValue
    public var value: MessagePackValue
    public init(_ key: MessagePackValue, _ value: MessagePackValue) {
        self.key = key
        self.value = value
    }
}

/// Why MessagePack bytes could not be decoded.
public struct MessagePackError: Error, Hashable, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

extension MessagePackValue {
    /// The smallest encoding of the value.
    public func encoded() -> [UInt8] {
        var output: [UInt8] = []
        self.encode(into: &output)
        return output
    }

    func encode(into out: inout [UInt8]) {
        switch self {
        case .nil: out.append(0xC0)
        case .bool(let value): out.append(value ? 0xC3 : 0xC2)
        case .int(let value): MessagePackWriter.integer(value, into: &out)
        case .uint(let value): MessagePackWriter.unsigned(value, into: &out)
        case .float(let value):
            out.append(0xCA)
            MessagePackWriter.bigEndian(value.bitPattern, into: &out)
        case .double(let value): MessagePackWriter.double(value, into: &out)
        case .string(let value): MessagePackWriter.string(value, into: &out)
        case .binary(let bytes): MessagePackWriter.binary(bytes, into: &out)
        case .array(let items):
            MessagePackWriter.arrayHeader(items.count, into: &out)
            for item in items { item.encode(into: &out) }
        case .map(let pairs):
            MessagePackWriter.mapHeader(pairs.count, into: &out)
            for pair in pairs {
                pair.key.encode(into: &out)
                pair.value.encode(into: &out)
            }
        case .ext(let type, let data):
            switch data.count {
            case 1: out.append(0xD4)
            case 2: out.append(0xD5)
            case 4: out.append(0xD6)
            case 8: out.append(0xD7)
            case 16: out.append(0xD8)
            default: MessagePackWriter.length(data.count, small: 0xC7, medium: 0xC8, large: 0xC9, into: &out)
            }
            out.append(UInt8(bitPattern: type))
            out += data
        }
    }

    /// Decodes exactly one value filling `bytes`. Lengths are checked against what is there and
    /// nesting is limited, so hostile input fails cleanly. A document of more than
    /// `maximumValues` values (each scalar, string, array and map counts one) is refused: one
    /// byte is a value (an empty array, say) that takes about 40 bytes decoded, so the count, not
    /// the size, bounds the memory a document takes.
    public static func decode(
        _ bytes: [UInt8], maximumDepth: Int = 64, maximumValues: Int = .max
    ) throws(MessagePackError) -> MessagePackValue {
        var reader = MessagePackReader(bytes: bytes, maximumDepth: maximumDepth, valuesLeft: maximumValues)
        let value = try reader.read(depth: 0)
        guard reader.offset == bytes.count else { throw MessagePackError("trailing bytes") }
        return value
    }
}

/// The smallest msgpack encodings of scalars and container headers, appended to a byte buffer.
/// Shared by ``MessagePackValue`` and by code that writes msgpack without building a value
/// first (``JSONValue/writeMessagePack(into:)``).
enum MessagePackWriter {
    static func integer(_ value: Int64, into out: inout [UInt8]) {
        if value >= 0 {
            Self.unsigned(UInt64(value), into: &out)
        } else if value >= -32 {
            out.append(UInt8(bitPattern: Int8(value)))
        } else if value >= Int64(Int8.min) {
            out.append(0xD0)
            out.append(UInt8(bitPattern: Int8(value)))
        } else if value >= Int64(Int16.min) {
            out.append(0xD1)
            Self.bigEndian(Int16(value), into: &out)
        } else if value >= Int64(Int32.min) {
            out.append(0xD2)
            Self.bigEndian(Int32(value), into: &out)
        } else {
            out.append(0xD3)
            Self.bigEndian(value, into: &out)
        }
    }

    static func unsigned(_ value: UInt64, into out: inout [UInt8]) {
        if value < 0x80 {
            out.append(UInt8(value))
        } else if value <= UInt64(UInt8.max) {
            out.append(0xCC)
            out.append(UInt8(value))
        } else if value <= UInt64(UInt16.max) {
            out.append(0xCD)
            Self.bigEndian(UInt16(value), into: &out)
        } else if value <= UInt64(UInt32.max) {
            out.append(0xCE)
            Self.bigEndian(UInt32(value), into: &out)
        } else {
            out.append(0xCF)
            Self.bigEndian(value, into: &out)
        }
    }

    static func double(_ value: Double, into out: inout [UInt8]) {
        out.append(0xCB)
        Self.bigEndian(value.bitPattern, into: &out)
    }

    static func string(_ value: String, into out: inout [UInt8]) {
        let count = value.utf8.count
        if count < 32 {
            out.append(0xA0 | UInt8(count))
        } else {
            Self.length(count, small: 0xD9, medium: 0xDA, large: 0xDB, into: &out)
        }
        out.append(contentsOf: value.utf8)
    }

    static func binary(_ bytes: [UInt8], into out: inout [UInt8]) {
        Self.length(bytes.count, small: 0xC4, medium: 0xC5, large: 0xC6, into: &out)
        out += bytes
    }

    static func arrayHeader(_ count: Int, into out: inout [UInt8]) {
        count < 16 ? out.append(0x90 | UInt8(count)) : Self.length(count, small: nil, medium: 0xDC, large: 0xDD, into: &out)
    }

    static func mapHeader(_ count: Int, into out: inout [UInt8]) {
        count < 16 ? out.append(0x80 | UInt8(count)) : Self.length(count, small: nil, medium: 0xDE, large: 0xDF, into: &out)
    }

    static func length(_ count: Int, small: UInt8?, medium: UInt8, large: UInt8, into out: inout [UInt8]) {
        if let small, count <= Int(UInt8.max) {
            out.append(small)
            out.append(UInt8(count))
        } else if count <= Int(UInt16.max) {
            out.append(medium)
            Self.bigEndian(UInt16(count), into: &out)
        } else {
            out.append(large)
            Self.bigEndian(UInt32(count), into: &out)
        }
    }

    static func bigEndian<Integer: FixedWidthInteger>(_ value: Integer, into out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }
}

struct MessagePackReader {
    let bytes: [UInt8]
    let maximumDepth: Int
    /// How many more values the document may have.
    var valuesLeft: Int
    var offset = 0

    /// What a container's header may reserve at once: a count is checked against the bytes
    /// left, but each element then takes a slot of a value's size (up to 8 times its byte), so a
    /// larger container grows as its elements come.
    static let reservedAtOnce = 4096

    mutating func take(_ count: Int) throws(MessagePackError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= self.bytes.count - self.offset else { throw MessagePackError("truncated") }
        defer { self.offset += count }
        return self.bytes[self.offset..<self.offset + count]
    }

    mutating func byte() throws(MessagePackError) -> UInt8 { try self.take(1).first! }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(MessagePackError) -> T {
        T(bigEndian: Array(try self.take(MemoryLayout<T>.size)))
    }

    mutating func read(depth: Int) throws(MessagePackError) -> MessagePackValue {
        guard depth <= self.maximumDepth else { throw MessagePackError("nesting too deep") }
        guard self.valuesLeft > 0 else { throw MessagePackError("too many values") }
        self.valuesLeft -= 1
        let head = try self.byte()
        switch head {
        case 0x00...0x7F: return .uint(UInt64(head))
        case 0x80...0x8F: return try self.map(Int(head & 0x0F), depth: depth)
        case 0x90...0x9F: return try self.array(Int(head & 0x0F), depth: depth)
        case 0xA0...0xBF: return try self.string(Int(head & 0x1F))
        case 0xC0: return .nil
        case 0xC2: return .bool(false)
        case 0xC3: return .bool(true)
        case 0xC4: return .binary(Array(try self.take(Int(try self.integer(UInt8.self)))))
        case 0xC5: return .binary(Array(try self.take(Int(try self.integer(UInt16.self)))))
        case 0xC6: return .binary(Array(try self.take(Int(try self.integer(UInt32.self)))))
        case 0xC7: return try self.ext(Int(try self.integer(UInt8.self)))
        case 0xC8: return try self.ext(Int(try self.integer(UInt16.self)))
        case 0xC9: return try self.ext(Int(try self.integer(UInt32.self)))
        case 0xCA: return .float(Float(bitPattern: try self.integer(UInt32.self)))
        case 0xCB: return .double(Double(bitPattern: try self.integer(UInt64.self)))
        case 0xCC: return .uint(UInt64(try self.integer(UInt8.self)))
        case 0xCD: return .uint(UInt64(try self.integer(UInt16.self)))
        case 0xCE: return .uint(UInt64(try self.integer(UInt32.self)))
        case 0xCF: return .uint(try self.integer(UInt64.self))
        case 0xD0: return .int(Int64(try self.integer(Int8.self)))
        case 0xD1: return .int(Int64(try self.integer(Int16.self)))
        case 0xD2: return .int(Int64(try self.integer(Int32.self)))
        case 0xD3: return .int(try self.integer(Int64.self))
        case 0xD4: return try self.ext(1)
        case 0xD5: return try self.ext(2)
        case 0xD6: return try self.ext(4)
        case 0xD7: return try self.ext(8)
        case 0xD8: return try self.ext(16)
        case 0xD9: return try self.string(Int(try self.integer(UInt8.self)))
        case 0xDA: return try self.string(Int(try self.integer(UInt16.self)))
        case 0xDB: return try self.string(Int(try self.integer(UInt32.self)))
        case 0xDC: return try self.array(Int(try self.integer(UInt16.self)), depth: depth)
        case 0xDD: return try self.array(Int(try self.integer(UInt32.self)), depth: depth)
        case 0xDE: return try self.map(Int(try self.integer(UInt16.self)), depth: depth)
        case 0xDF: return try self.map(Int(try self.integer(UInt32.self)), depth: depth)
        case 0xE0...0xFF: return .int(Int64(Int8(bitPattern: head)))
        default: throw MessagePackError("reserved type byte 0xc1")
        }
    }

    mutating func string(_ count: Int) throws(MessagePackError) -> MessagePackValue {
        guard let text = UTF8Text.string(try self.take(count)) else { throw MessagePackError("invalid UTF-8") }
        return .string(text)
    }

    mutating func ext(_ count: Int) throws(MessagePackError) -> MessagePackValue {
        let type = Int8(bitPattern: try self.byte())
        return .ext(type: type, data: Array(try self.take(count)))
    }

    mutating func array(_ count: Int, depth: Int) throws(MessagePackError) -> MessagePackValue {
        // Each element takes at least one byte: a count larger than what is left is a lie.
        guard count <= self.bytes.count - self.offset else { throw MessagePackError("truncated") }
        var items: [MessagePackValue] = []
        items.reserveCapacity(min(count, Self.reservedAtOnce))
        for _ in 0..<count { items.append(try self.read(depth: depth + 1)) }
        return .array(items)
    }

    mutating func map(_ count: Int, depth: Int) throws(MessagePackError) -> MessagePackValue {
        guard count <= (self.bytes.count - self.offset) / 2 else { throw MessagePackError("truncated") }
        var pairs: [MessagePackPair] = []
        pairs.reserveCapacity(min(count, Self.reservedAtOnce))
        for _ in 0..<count {
            let key = try self.read(depth: depth + 1)
            pairs.append(MessagePackPair(key, try self.read(depth: depth + 1)))
        }
        return .map(pairs)
    }
}

extension FixedWidthInteger {
    var bigEndianBytes: [UInt8] { withUnsafeBytes(of: self.bigEndian) { Array($0) } }

    /// The integer whose big-endian bytes these are (signed types by bit pattern).
    init(bigEndian bytes: [UInt8]) {
        var value: UInt64 = 0
        for byte in bytes { value = (value << 8) | UInt64(byte) }
        self.init(truncatingIfNeeded: value)
    }
}

extension Comparable {
    fileprivate func clamped(to range: ClosedRange<Self>) -> Self { min(max(self, range.lowerBound), range.upperBound) }
}
