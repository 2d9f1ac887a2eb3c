import Foundation

/// Any JSON value, plus the binary blobs Socket.IO carries beside JSON as attachments.
public indirect enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
    /// A binary attachment (`Buffer` / `ArrayBuffer` on the JavaScript side). Not JSON: the
    /// Socket.IO encoder replaces it with a placeholder and sends the bytes apart.
    case binary([UInt8])

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }
}

extension JSONValue {
    /// Errors of JSON text parsing.
    public struct ParseError: Error, Hashable, Sendable {
        public var message: String
    }

    /// Parses JSON text (one value; UTF-8). Nesting deeper than `maximumDepth`, and a document
    /// of more than `maximumValues` values (each array, object, string, number and literal
    /// counts one), are refused.
    public static func parse(
        _ text: some StringProtocol, maximumDepth: Int = 64, maximumValues: Int = .max
    ) throws -> JSONValue {
        try Self.parseCounting(text, maximumDepth: maximumDepth, maximumValues: maximumValues).value
    }

    /// ``parse(_:maximumDepth:maximumValues:)``, and how many values the document has.
    static func parseCounting(
        _ text: some StringProtocol, maximumDepth: Int = 64, maximumValues: Int = .max
    ) throws -> (value: JSONValue, values: Int) {
        var parser = JSONTextParser(bytes: Array(text.utf8), maximumDepth: maximumDepth, maximumValues: maximumValues)
        let value = try parser.parseDocument()
        return (value, maximumValues - parser.valuesLeft)
    }

    /// Parses JSON text like ``parse(_:maximumDepth:)``, and also returns the exact text of the
    /// top-level object's member `key` (nil when the document is not an object or has no such
    /// member): a value to be sent on as it came, without writing it again.
    public static func parse(
        _ text: some StringProtocol, keepingTextOf key: String, maximumDepth: Int = 64
    ) throws -> (value: JSONValue, memberText: String?) {
        var parser = JSONTextParser(bytes: Array(text.utf8), maximumDepth: maximumDepth)
        parser.keptKey = Array(key.utf8)
        let value = try parser.parseDocument()
        return (value, parser.kept.map { String(decoding: parser.bytes[$0], as: UTF8.self) })
    }

    /// Compact JSON text. A `.binary` value is written as `null`: encode Socket.IO packets with
    /// ``SocketIOPacket/encode()`` so binaries become attachments.
    public var jsonText: String {
        var output = ""
        self.write(to: &output)
        return output
    }

    func write(to output: inout String) {
        switch self {
        case .null, .binary: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .number(let value): output += Self.format(value)
        case .string(let value): Self.writeString(value, to: &output)
        case .array(let items):
            output += "["
            for (index, item) in items.enumerated() {
                if index > 0 { output += "," }
                item.write(to: &output)
            }
            output += "]"
        case .object(let members):
            output += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { output += "," }
                Self.writeString(key, to: &output)
                output += ":"
                members[key]!.write(to: &output)
            }
            output += "}"
        }
    }

    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Appends `value` as a JSON string (quoted, escaped as needed).
    public static func writeString(_ value: String, to output: inout String) {
        output += "\""
        // Most strings need no escape: one scan of the UTF-8 bytes, then one append. (0xE2 leads
        // U+2028 and U+2029, which are escaped for JavaScript's sake.)
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 == 0xE2 }) {
            output += value
            output += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029:
                output += String(format: "\\u%04x", scalar.value)
            default: output.unicodeScalars.append(scalar)
            }
        }
        output += "\""
    }
}

/// A strict RFC 8259 parser over UTF-8 bytes with a depth limit, so hostile input can neither
/// crash nor exhaust the stack, and a limit on values, so that a document cannot take much more
/// memory parsed than as text (a megabyte of `[[],[],...]` is 333,000 arrays).
struct JSONTextParser {
    let bytes: [UInt8]
    let maximumDepth: Int
    /// Values the document may still have.
    private(set) var valuesLeft: Int
    var index = 0
    /// A member of the top-level object whose text to keep (UTF-8), and where it was found.
    var keptKey: [UInt8]?
    var kept: Range<Int>?

    init(bytes: [UInt8], maximumDepth: Int, maximumValues: Int = .max) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
        self.valuesLeft = maximumValues
    }

    mutating func parseDocument() throws -> JSONValue {
        let value = try self.parseValue(depth: 0)
        self.skipWhitespace()
        guard self.index == self.bytes.count else { throw self.error("trailing characters") }
        return value
    }

    private func error(_ message: String) -> JSONValue.ParseError {
        JSONValue.ParseError(message: "\(message) at offset \(self.index)")
    }

    private mutating func skipWhitespace() {
        // Compared one by one: `contains` on an array literal went through the runtime's generic
        // metadata on every call (about 1 % of the gateway's CPU in a profile).
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D: self.index += 1
            default: return
            }
        }
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth <= self.maximumDepth else { throw self.error("nesting too deep") }
        guard self.valuesLeft > 0 else { throw self.error("too many values") }
        self.valuesLeft -= 1
        self.skipWhitespace()
        guard self.index < self.bytes.count else { throw self.error("unexpected end") }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"): return try self.parseObject(depth: depth)
        case UInt8(ascii: "["): return try self.parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try self.parseString())
        case UInt8(ascii: "t"): try self.expect("true"); return .bool(true)
        case UInt8(ascii: "f"): try self.expect("false"); return .bool(false)
        case UInt8(ascii: "n"): try self.expect("null"); return .null
        default: return .number(try self.parseNumber())
        }
    }

    private mutating func expect(_ literal: StaticString) throws {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count,
            literal.withUTF8Buffer({ $0.elementsEqual(self.bytes[self.index..<self.index + count]) })
        else { throw self.error("invalid literal") }
        self.index += count
    }

    private mutating func parseObject(depth: Int) throws -> JSONValue {
        self.index += 1
        var members: [String: JSONValue] = [:]
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
            return .object(members)
        }
        while true {
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                throw self.error("expected a key")
            }
            let key = try self.parseString()
            // A member's key counts as a value too: it is a string of its own, and a slot.
            guard self.valuesLeft > 0 else { throw self.error("too many values") }
            self.valuesLeft -= 1
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                throw self.error("expected ':'")
            }
            self.index += 1
            if depth == 0, let keptKey = self.keptKey, key.utf8.elementsEqual(keptKey) {
                self.skipWhitespace()
                let start = self.index
                members[key] = try self.parseValue(depth: depth + 1)
                self.kept = start..<self.index
            } else {
                members[key] = try self.parseValue(depth: depth + 1)
            }
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.error("unexpected end") }
            if self.bytes[self.index] == UInt8(ascii: ",") {
                self.index += 1
                continue
            }
            guard self.bytes[self.index] == UInt8(ascii: "}") else { throw self.error("expected ',' or '}'") }
            self.index += 1
            return .object(members)
        }
    }

    private mutating func parseArray(depth: Int) throws -> JSONValue {
        self.index += 1
        var items: [JSONValue] = []
        self.skipWhitespace()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "]") {
            self.index += 1
            return .array(items)
        }
        while true {
            items.append(try self.parseValue(depth: depth + 1))
            self.skipWhitespace()
            guard self.index < self.bytes.count else { throw self.error("unexpected end") }
            if self.bytes[self.index] == UInt8(ascii: ",") {
                self.index += 1
                continue
            }
            guard self.bytes[self.index] == UInt8(ascii: "]") else { throw self.error("expected ',' or ']'") }
            self.index += 1
            return .array(items)
        }
    }

    private mutating func parseString() throws -> String {
        self.index += 1
        // Most strings have no escape: one run of bytes up to the closing quote.
        var end = self.index
        while end < self.bytes.count, self.bytes[end] != UInt8(ascii: "\""), self.bytes[end] != UInt8(ascii: "\\"),
            self.bytes[end] >= 0x20
        {
            end += 1
        }
        if end < self.bytes.count, self.bytes[end] == UInt8(ascii: "\"") {
            guard let text = UTF8Text.string(self.bytes[self.index..<end]) else { throw self.error("invalid UTF-8") }
            self.index = end + 1
            return text
        }
        var scalars = String.UnicodeScalarView()
        var start = self.index
        func flush(_ parser: inout JSONTextParser) throws {
            if start < parser.index {
                guard let text = UTF8Text.string(parser.bytes[start..<parser.index]) else {
                    throw parser.error("invalid UTF-8")
                }
                scalars.append(contentsOf: text.unicodeScalars)
            }
        }
        while true {
            guard self.index < self.bytes.count else { throw self.error("unterminated string") }
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                try flush(&self)
                self.index += 1
                return String(scalars)
            }
            if byte < 0x20 { throw self.error("control character in string") }
            if byte == UInt8(ascii: "\\") {
                try flush(&self)
                self.index += 1
                guard self.index < self.bytes.count else { throw self.error("unterminated escape") }
                let escape = self.bytes[self.index]
                self.index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append("\"")
                case UInt8(ascii: "\\"): scalars.append("\\")
                case UInt8(ascii: "/"): scalars.append("/")
                case UInt8(ascii: "b"): scalars.append("\u{08}")
                case UInt8(ascii: "f"): scalars.append("\u{0C}")
                case UInt8(ascii: "n"): scalars.append("\n")
                case UInt8(ascii: "r"): scalars.append("\r")
                case UInt8(ascii: "t"): scalars.append("\t")
                case UInt8(ascii: "u"):
                    scalars.append(try self.parseUnicodeEscape())
                default: throw self.error("invalid escape")
                }
                start = self.index
                continue
            }
            self.index += 1
        }
    }

    /// The scalar of a `\uXXXX` escape (its `\u` already read), or of a surrogate pair's two
    /// escapes. A surrogate without its other half (JSON's grammar allows one, and
    /// `JSON.stringify` writes one for a string cut inside an emoji) becomes U+FFFD, as a
    /// browser does when it sends such a string as UTF-8: the packet is still understood, where
    /// refusing it closed the client's connection.
    private mutating func parseUnicodeEscape() throws -> Unicode.Scalar {
        let code = try self.parseHex4()
        if (0xD800...0xDBFF).contains(code), self.index + 5 < self.bytes.count,
            self.bytes[self.index] == UInt8(ascii: "\\"), self.bytes[self.index + 1] == UInt8(ascii: "u")
        {
            let afterHigh = self.index
            self.index += 2
            let low = try self.parseHex4()
            if (0xDC00...0xDFFF).contains(low), let scalar = Unicode.Scalar(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)) {
                return scalar
            }
            self.index = afterHigh  // not its low half: that escape is read on its own next
        }
        return Unicode.Scalar(code) ?? "\u{FFFD}"
    }

    /// Four hex digits, read byte by byte: through `UInt32(_:radix:)` an escape cost a string
    /// and a generic parse (most of the gateway's time on a push of 4,000 escaped control
    /// characters, the forty-ninth session measured), and a `+` passed for a digit.
    private mutating func parseHex4() throws -> UInt32 {
        guard self.index + 4 <= self.bytes.count else { throw self.error("invalid \\u escape") }
        var value: UInt32 = 0
        for offset in 0..<4 {
            let byte = self.bytes[self.index + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte &- UInt8(ascii: "A") &+ 10
            default: throw self.error("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
        }
        self.index += 4
        return value
    }

    private mutating func parseNumber() throws -> Double {
        let start = self.index
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "-") { self.index += 1 }
        let digitsStart = self.index
        while self.index < self.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self.bytes[self.index]) {
            self.index += 1
        }
        guard self.index > digitsStart else { throw self.error("invalid value") }
        if self.bytes[digitsStart] == UInt8(ascii: "0"), self.index - digitsStart > 1 { throw self.error("leading zero") }
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ".") {
            self.index += 1
            let fraction = self.index
            while self.index < self.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self.bytes[self.index]) {
                self.index += 1
            }
            guard self.index > fraction else { throw self.error("invalid number") }
        }
        if self.index < self.bytes.count,
            self.bytes[self.index] == UInt8(ascii: "e") || self.bytes[self.index] == UInt8(ascii: "E")
        {
            self.index += 1
            if self.index < self.bytes.count,
                self.bytes[self.index] == UInt8(ascii: "+") || self.bytes[self.index] == UInt8(ascii: "-")
            {
                self.index += 1
            }
            let exponent = self.index
            while self.index < self.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self.bytes[self.index]) {
                self.index += 1
            }
            guard self.index > exponent else { throw self.error("invalid number") }
        }
        guard let value = Double(String(decoding: self.bytes[start..<self.index], as: UTF8.self)) else {
            throw self.error("invalid number")
        }
        // JSON numbers have no bound; one past a double's range (`1e400`) is the largest double
        // of its sign, not an infinity, which JSON cannot carry on (it would go out as `null`).
        return value.isFinite ? value : (value < 0 ? -.greatestFiniteMagnitude : .greatestFiniteMagnitude)
    }
}
