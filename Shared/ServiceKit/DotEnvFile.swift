/// The `.env` file's lines as docker compose and python-dotenv read them: `KEY=value`, `#`
/// comments, an optional `export ` before the key, and a value in matching single or double
/// quotes taken without them and without what follows them (an unquoted value ends at ` #`). swift-configuration's own
/// parser kept the quotes (`MEDIA_DIR="/srv/media"` was a directory named with quotes) and
/// ignored `export` lines.
enum DotEnvFile {
    static func variables(in contents: String) -> [String: String] {
        var variables: [String: String] = [:]
        for rawLine in contents.split(whereSeparator: \.isNewline) {
            var line = Substring(rawLine).trimmingWhitespace()
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            if line.hasPrefix("export ") { line = line.dropFirst("export ".count).trimmingWhitespace() }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingWhitespace()
            guard let first = key.first, first == "_" || first.isLetter,
                key.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) })
            else { continue }
            variables[String(key)] = Self.value(line[line.index(after: equals)...].trimmingWhitespace())
        }
        return variables
    }

    /// A quoted value is what lies between its quote and the closing one, whatever follows (a
    /// comment: until the forty-fifth session `KEY="a b" # c` kept its quotes). Within double
    /// quotes `\"` and `\\` are a quote and a backslash and `\n` a line break, as compose and
    /// python-dotenv read them (another backslash stays); single quotes take everything as it is.
    private static func value(_ text: Substring) -> String {
        if text.first == "'", let closing = text.dropFirst().firstIndex(of: "'") {
            return String(text[text.index(after: text.startIndex)..<closing])
        }
        if text.first == "\"" {
            var value = ""
            var escaped = false
            for character in text.dropFirst() {
                if escaped {
                    switch character {
                    case "n": value.append("\n")
                    case "\"", "\\": value.append(character)
                    default: value += "\\\(character)"
                    }
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else if character == "\"" {
                    return value
                } else {
                    value.append(character)
                }
            }
            // No closing quote: the text as it is, as before.
        }
        if let comment = text.range(of: " #") { return String(text[..<comment.lowerBound].trimmingWhitespace()) }
        return String(text)
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> Substring {
        let start = self.firstIndex { !$0.isWhitespace } ?? self.endIndex
        let end = self[start...].lastIndex { !$0.isWhitespace }.map { self.index(after: $0) } ?? start
        return self[start..<end]
    }
}
