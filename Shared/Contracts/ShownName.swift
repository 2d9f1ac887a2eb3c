/// The rules for a name that other users are shown: a display name, a group's title. It must
/// show something (not only whitespace or format characters such as U+200B or U+FEFF), and may
/// hold neither control characters, line breaks, nor the bidirectional embeddings, overrides
/// and isolates that would reorder the text a client shows around it ("alice reacted" read
/// backwards).
public enum ShownName {
    /// Throws `invalid_argument` naming `field` when `name` breaks a rule; `name` is already
    /// trimmed and within its length.
    public static func check(_ name: String, field: String) throws {
        guard name.unicodeScalars.contains(where: Self.isVisible) else {
            throw ServiceError.invalidArgument("\(field) must have a visible character")
        }
        guard !name.unicodeScalars.contains(where: Self.isDirectionalFormatting) else {
            throw ServiceError.invalidArgument(
                "\(field) must not contain directional formatting characters (U+202A to U+202E, U+2066 to U+2069)")
        }
        guard !name.unicodeScalars.contains(where: Self.breaksTheLine) else {
            throw ServiceError.invalidArgument("\(field) must not contain control characters or line breaks")
        }
    }

    /// Whether `scalar` shows something: not whitespace, a control character, or a format or
    /// default-ignorable character (U+200B, U+FEFF, the bidirectional overrides).
    public static func isVisible(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        return !properties.isWhitespace && !properties.isDefaultIgnorableCodePoint
            && properties.generalCategory != .format && properties.generalCategory != .control
            && !Self.blanks.contains(scalar.value)
    }

    /// Letters and symbols that draw nothing, used to make names that look empty: the Braille
    /// blank and the Hangul fillers (the Unicode properties call them visible).
    private static let blanks: Set<UInt32> = [0x2800, 0x115F, 0x1160, 0x3164, 0xFFA0]

    /// The embeddings, overrides and isolates (U+202A to U+202E, U+2066 to U+2069). The marks
    /// (U+200E, U+200F, U+061C) are kept: they only give a neutral character a direction, which
    /// right-to-left names with digits need (docs/auth.md).
    private static func isDirectionalFormatting(_ scalar: Unicode.Scalar) -> Bool {
        (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
    }

    /// Control characters, and U+2028 and U+2029, which break a line as a newline does.
    private static func breaksTheLine(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }
}
