extension MediaSniffer {
    /// A file name safe to show and to store: the last path component, characters outside
    /// letters, digits, space, `.`, `_` and `-` replaced by `_`, no leading dot, at most 100
    /// characters; `file` when nothing is left.
    public static func sanitizeFileName(_ name: String) -> String {
        let last = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var cleaned = String(
            last.unicodeScalars.map { scalar -> Character in
                let allowed =
                    scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || " ._-".unicodeScalars.contains(scalar)
                return allowed && scalar.value >= 0x20 ? Character(scalar) : "_"
            })
        cleaned = cleaned.trimmingCharacters(in: " .")
        if cleaned.count > 100 { cleaned = String(cleaned.prefix(100)) }
        return cleaned.isEmpty ? "file" : cleaned
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars = scalars.dropFirst() }
        while let last = scalars.last, set.contains(last) { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
