import Foundation

extension UUID {
    /// The RFC 9562 text form in lowercase (`8-4-4-4-12` hex digits), written by hand.
    ///
    /// Foundation's `uuidString` formats through `snprintf` and its parser through `sscanf`: with
    /// several ids in every message, they were about 2.5 % of a service's CPU.
    public var lowercasedText: String {
        withUnsafeBytes(of: self.uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { text in
                var position = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[position] = UInt8(ascii: "-")
                        position += 1
                    }
                    text[position] = HexDigit.lowercase(byte >> 4)
                    text[position + 1] = HexDigit.lowercase(byte & 0x0F)
                    position += 2
                }
                return position
            }
        }
    }

    /// Parses the 36-character text form, hex digits in either case; nil for anything else.
    public init?(text: some StringProtocol) {
        let parsed = text.utf8.withContiguousStorageIfAvailable(UUIDTextDigits.parse) ?? UUIDTextDigits.parse(Array(text.utf8))
        guard let parsed else { return nil }
        self.init(uuid: parsed)
    }
}

/// Hexadecimal digits as UTF-8 bytes, for the ids written and read by hand (UUIDs, trace ids).
enum HexDigit {
    /// The lowercase digit for a value 0...15.
    static func lowercase(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") &+ value : UInt8(ascii: "a") &+ value &- 10
    }

    /// The value of a digit in either case.
    static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit &- UInt8(ascii: "A") &+ 10
        default: Self.lowercaseValue(digit)
        }
    }

    /// The value of a lowercase digit; nil for an uppercase one.
    static func lowercaseValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit &- UInt8(ascii: "a") &+ 10
        default: nil
        }
    }
}

private enum UUIDTextDigits {
    static func parse(_ utf8: some Collection<UInt8>) -> uuid_t? {
        guard utf8.count == 36 else { return nil }
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let parsed = withUnsafeMutableBytes(of: &uuid) { output -> Bool in
            var position = utf8.startIndex
            for index in 0..<16 {
                if index == 4 || index == 6 || index == 8 || index == 10 {
                    guard utf8[position] == UInt8(ascii: "-") else { return false }
                    position = utf8.index(after: position)
                }
                let next = utf8.index(after: position)
                guard let high = HexDigit.value(utf8[position]), let low = HexDigit.value(utf8[next]) else { return false }
                output[index] = high << 4 | low
                position = utf8.index(after: next)
            }
            return true
        }
        return parsed ? uuid : nil
    }
}
