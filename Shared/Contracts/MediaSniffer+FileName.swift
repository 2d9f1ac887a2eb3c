import Foundation

extension MediaSniffer {
    /// The most grapheme clusters a sanitised file name keeps.
    public static let maximumFileNameCharacters = 100
    /// The most UTF-8 bytes a sanitised file name takes (what most file systems allow).
    public static let maximumFileNameBytes = 255
    /// The most Unicode scalars of a name's last path component that are looked at: what is
    /// beyond could not fit in the result, and normalising it would cost time for nothing.
    private static let fileNameScalarsRead = 1024

    /// A file name safe to show and to store (docs/media.md, "File names"): the last path
    /// component in NFC; letters, combining marks, decimal digits, space, `.`, `_` and `-`
    /// kept, anything else (separators, controls, format characters, other punctuation,
    /// symbols) replaced by `_`; at most ``maximumFileNameCharacters`` grapheme clusters and
    /// ``maximumFileNameBytes`` UTF-8 bytes, cut between clusters; no leading or trailing space
    /// or dot; `file` when nothing is left. Sanitising a sanitised name changes nothing.
    public static func sanitizeFileName(_ name: String) -> String {
        let scalars = Self.lastPathComponent(name).drop(while: Self.isTrimmed).prefix(Self.fileNameScalarsRead)
        let normalised = String(Substring(scalars)).precomposedStringWithCanonicalMapping
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: normalised.unicodeScalars.map { Self.isKept($0) ? $0 : "_" })
        let result = Self.trimmed(Self.cut(String(kept)))
        return result.isEmpty ? "file" : result
    }

    /// The scalars after the last `/` or `\`.
    private static func lastPathComponent(_ name: String) -> Substring.UnicodeScalarView {
        let scalars = Substring(name).unicodeScalars
        guard let separator = scalars.lastIndex(where: { $0 == "/" || $0 == "\\" }) else { return scalars }
        return scalars[scalars.index(after: separator)...]
    }

    /// Letters (Unicode's Alphabetic), combining marks (Mn, Mc, Me), decimal digits (Nd), space,
    /// `.`, `_` and `-`.
    private static func isKept(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber: return true
        default: return scalar.properties.isAlphabetic || scalar == " " || scalar == "." || scalar == "_" || scalar == "-"
        }
    }

    private static func isTrimmed(_ scalar: Unicode.Scalar) -> Bool { scalar == " " || scalar == "." }

    /// `name` without spaces and dots at either end.
    private static func trimmed(_ name: Substring) -> String {
        let scalars = name.unicodeScalars
        guard let first = scalars.firstIndex(where: { !Self.isTrimmed($0) }),
            let last = scalars.lastIndex(where: { !Self.isTrimmed($0) })
        else { return "" }
        return String(Substring(scalars[first...last]))
    }

    /// The longest run of whole grapheme clusters from the start within both limits.
    private static func cut(_ name: String) -> Substring {
        var end = name.startIndex
        var characters = 0
        var bytes = 0
        while end < name.endIndex, characters < Self.maximumFileNameCharacters {
            let next = name.index(after: end)
            bytes += name.utf8.distance(from: end, to: next)
            guard bytes <= Self.maximumFileNameBytes else { break }
            characters += 1
            end = next
        }
        return name[..<end]
    }
}
