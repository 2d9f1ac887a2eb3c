/// The contract's limits on what users write (protocol.md, "Conventions"), checked by the
/// messaging service. Each check returns the normalised value or throws `invalid_argument`
/// naming the field.
///
/// The contract's limits are configurable, with its values as the defaults (messaging reads
/// them from its environment at start; docs/messaging.md, "Limits"). The `emojiHex` rules are
/// not: they describe what a reaction is.
public struct MessagingRules: Hashable, Sendable {
    /// Code points in a message body, after trimming.
    public var maximumBodyLength = 4000
    public var maximumClientMessageIDLength = 64
    public var maximumTitleLength = 128
    /// Members of a group, the creator included.
    public var maximumGroupSize = 256
    /// Ids in one `delete_message`, as sent.
    public var maximumDeleteBatch = 100
    /// Code points in one `emojiHex` (the longest standard ZWJ sequences have 10).
    public static let maximumEmojiCodePoints = 16

    /// The contract's defaults.
    public init() {}

    // Every limit counts code points (Unicode scalars), as the contract says of the body: a
    // count of grapheme clusters let one "character" carry thousands of combining marks. No
    // text may hold U+0000, which PostgreSQL's text cannot store.

    /// Trimmed of Unicode whitespace at both ends, 1...4000 code points (by default).
    public func body(_ text: String) throws -> String {
        let trimmed = Self.trimmed(text)
        guard !trimmed.isEmpty else { throw ServiceError.invalidArgument("body must not be empty") }
        guard trimmed.unicodeScalars.count <= self.maximumBodyLength else {
            throw ServiceError.invalidArgument("body must be at most \(self.maximumBodyLength) characters")
        }
        return try Self.storable(trimmed, field: "body")
    }

    /// 1...64 code points (by default), as given.
    public func clientMessageID(_ text: String) throws -> String {
        guard (1...self.maximumClientMessageIDLength).contains(text.unicodeScalars.count) else {
            throw ServiceError.invalidArgument("clientMessageId must be 1 to \(self.maximumClientMessageIDLength) characters")
        }
        return try Self.storable(text, field: "clientMessageId")
    }

    /// Trimmed, 1...128 code points (by default), shown as it is written (``ShownName``, as a display name:
    /// a member is added to a group without being asked, so a title that reorders the text
    /// around it would be a way to mislead them).
    public func title(_ text: String?) throws -> String {
        let trimmed = Self.trimmed(text ?? "")
        guard (1...self.maximumTitleLength).contains(trimmed.unicodeScalars.count) else {
            throw ServiceError.invalidArgument("title must be 1 to \(self.maximumTitleLength) characters")
        }
        try ShownName.check(trimmed, field: "title")
        return trimmed
    }

    /// `text`, unless it holds U+0000.
    static func storable(_ text: String, field: String) throws -> String {
        guard !text.unicodeScalars.contains("\u{0}") else {
            throw ServiceError.invalidArgument("\(field) must not contain U+0000")
        }
        return text
    }

    /// Lowercase hexadecimal Unicode scalar values joined by `-`: `1f44d`, `1f468-200d-1f469`.
    /// Returned in its one spelling, without leading zeros (`0041` and `41` are one code point,
    /// and one reaction), the way the contract's examples write it. U+0000 and surrogates are
    /// not scalars anyone reacts with, and are refused. A reaction to add must also be what a
    /// title may be (`shown`; ``ShownName``: something visible, no control characters, line
    /// breaks or directional overrides), since every member is shown it (until the fifty-fourth
    /// session `a`, a line feed, and `202e`, which reverses what follows, were stored; a review).
    /// One to remove need not: those stored before stay removable.
    public static func emojiHex(_ text: String, shown: Bool = true) throws -> String {
        let invalid = ServiceError.invalidArgument("emojiHex must be lowercase hex code points joined by '-', like 1f44d")
        // Measured before it is split: a megabyte of '-' split first was a million substrings
        // (about 32 MB) for one refusal (a review in the forty-ninth session).
        guard !text.isEmpty, text.utf8.count <= maximumEmojiCodePoints * 7 - 1 else { throw invalid }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= maximumEmojiCodePoints else { throw invalid }
        let scalars = try parts.map { part -> Unicode.Scalar in
            guard (1...6).contains(part.count),
                part.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
                let value = UInt32(part, radix: 16), value != 0, let scalar = Unicode.Scalar(value)
            else { throw invalid }
            return scalar
        }
        if shown {
            var text = String.UnicodeScalarView()
            text.append(contentsOf: scalars)
            try ShownName.check(String(text), field: "emojiHex")
        }
        return scalars.map { String($0.value, radix: 16) }.joined(separator: "-")
    }

    static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
