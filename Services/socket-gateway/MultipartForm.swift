import Foundation

/// The parts of a `multipart/form-data` body (RFC 7578): each part's field name, its file name
/// when it is a file, its declared content type, and its bytes.
struct MultipartForm {
    struct Part {
        var name: String
        var fileName: String?
        var contentType: String?
        var body: Data
    }

    var parts: [Part]

    /// The boundary of a `multipart/form-data; boundary=...` content type.
    static func boundary(contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() where piece.lowercased().hasPrefix("boundary=") {
            var value = String(piece.dropFirst("boundary=".count))
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return (1...70).contains(value.count) ? value : nil
        }
        return nil
    }

    /// Nil when the body is not a well-formed form with this boundary.
    init?(body: Data, boundary: String) {
        let delimiter = Data("--\(boundary)".utf8)
        let separator = Data("\r\n--\(boundary)".utf8)
        guard let first = body.range(of: delimiter), first.lowerBound == body.startIndex else { return nil }
        var parts: [Part] = []
        var cursor = first.upperBound
        while true {
            // After a delimiter: `--` ends the form, CRLF starts a part.
            if body[cursor...].starts(with: Data("--".utf8)) { break }
            guard body[cursor...].starts(with: Data("\r\n".utf8)) else { return nil }
            let headersStart = cursor + 2
            guard let headersEnd = body.range(of: Data("\r\n\r\n".utf8), in: headersStart..<body.endIndex) else { return nil }
            guard let next = body.range(of: separator, in: headersEnd.upperBound..<body.endIndex) else { return nil }
            let headers = String(decoding: body[headersStart..<headersEnd.lowerBound], as: UTF8.self)
            guard var part = Self.part(headers: headers) else { return nil }
            part.body = body[headersEnd.upperBound..<next.lowerBound]
            parts.append(part)
            cursor = next.upperBound
        }
        self.parts = parts
    }

    private static func part(headers: String) -> Part? {
        var name: String?
        var fileName: String?
        var contentType: String?
        for line in headers.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let field = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch field {
            case "content-disposition":
                name = Self.parameter("name", in: value)
                fileName = Self.parameter("filename", in: value)
            case "content-type":
                contentType = value
            default:
                continue
            }
        }
        guard let name else { return nil }
        return Part(name: name, fileName: fileName, contentType: contentType, body: Data())
    }

    /// `key="value"` (or unquoted) in a header value.
    private static func parameter(_ key: String, in value: String) -> String? {
        for piece in value.split(separator: ";").dropFirst() {
            let trimmed = piece.trimmingCharacters(in: .whitespaces)
            guard let equals = trimmed.firstIndex(of: "="), trimmed[..<equals].lowercased() == key else { continue }
            var text = String(trimmed[trimmed.index(after: equals)...])
            if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 {
                text = String(text.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            return text
        }
        return nil
    }
}
