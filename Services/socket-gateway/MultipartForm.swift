import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// The most parts a form may have (a form with the file and a few fields has a handful).
    static let maximumParts = 64
    /// The most bytes of headers a part may have.
    static let maximumHeaderBytes = 16 * 1024

    /// Nil when the body is not a well-formed form with this boundary, or has more than
    /// ``maximumParts`` parts or a part with more than ``maximumHeaderBytes`` of headers.
    ///
    /// Linear in the body's size: each search starts where the last one ended and runs over
    /// the bytes in place. Until the thirty-ninth session it used `Data.range(of:in:)`,
    /// which on Linux copies the whole body on every call: a 25 MB body of tiny parts took the
    /// event loop it ran on for over ten minutes.
    init?(body: Data, boundary: String) {
        let separator = Array("\r\n--\(boundary)".utf8)
        let headersEnd = Array("\r\n\r\n".utf8)
        // The first delimiter opens the body, or follows a preamble, which RFC 2046 (5.1.1)
        // allows and receivers ignore.
        var cursor: Data.Index
        if body.starts(with: separator.dropFirst(2)) {
            cursor = body.startIndex + separator.count - 2
        } else if let first = Self.find(separator, in: body, from: body.startIndex) {
            cursor = first.upperBound
        } else {
            return nil
        }
        var parts: [Part] = []
        while true {
            // After a delimiter: `--` ends the form, CRLF starts a part.
            if body[cursor...].starts(with: "--".utf8) { break }
            guard body[cursor...].starts(with: "\r\n".utf8), parts.count < Self.maximumParts else { return nil }
            let headersStart = cursor + 2
            guard let headers = Self.find(headersEnd, in: body, from: headersStart),
                headers.lowerBound - headersStart <= Self.maximumHeaderBytes,
                let next = Self.find(separator, in: body, from: headers.upperBound),
                var part = Self.part(headers: String(decoding: body[headersStart..<headers.lowerBound], as: UTF8.self))
            else { return nil }
            part.body = body[headers.upperBound..<next.lowerBound]
            parts.append(part)
            cursor = next.upperBound
        }
        self.parts = parts
    }

    /// Where `needle` first occurs in `body` at or after `start`.
    static func find(_ needle: [UInt8], in body: Data, from start: Data.Index) -> Range<Data.Index>? {
        guard !needle.isEmpty, start <= body.endIndex, body.endIndex - start >= needle.count else { return nil }
        return body.withUnsafeBytes { haystack -> Range<Data.Index>? in
            guard let base = haystack.baseAddress else { return nil }
            let offset = start - body.startIndex
            return needle.withUnsafeBytes { wanted -> Range<Data.Index>? in
                guard let wantedBytes = wanted.baseAddress else { return nil }
                // Each candidate is the next byte equal to the needle's first (`memchr`), then
                // compared whole: at most the needle's length (≤ 74 bytes) per byte of body.
                let end = base + haystack.count
                var from = base + offset
                while end - from >= wanted.count,
                    let candidate = memchr(from, Int32(needle[0]), end - from).map(UnsafeRawPointer.init)
                {
                    guard end - candidate >= wanted.count else { return nil }
                    if memcmp(candidate, wantedBytes, wanted.count) == 0 {
                        let at = body.startIndex + (candidate - base)
                        return at..<(at + needle.count)
                    }
                    from = candidate + 1
                }
                return nil
            }
        }
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
                let parameters = Self.parameters(of: value)
                name = parameters["name"]
                // Browsers write `"`, CR and LF in a file name as %22, %0D and %0A (HTML's
                // form encoding); the media service cleans the name it stores.
                fileName = parameters["filename"].map {
                    $0.replacingOccurrences(of: "%22", with: "\"").replacingOccurrences(of: "%0D", with: "\r")
                        .replacingOccurrences(of: "%0A", with: "\n")
                }
            case "content-type":
                contentType = value
            default:
                continue
            }
        }
        guard let name else { return nil }
        return Part(name: name, fileName: fileName, contentType: contentType, body: Data())
    }

    /// The `key="value"` (or unquoted) parameters after a header value's first `;`, keys
    /// lowercased, the first of each key kept. A `;` inside quotes is part of the value
    /// (browsers send `filename="report; final.txt"` so); `\"` in quotes is a quote.
    static func parameters(of value: String) -> [String: String] {
        var pieces: [String] = []
        var piece = ""
        var quoted = false
        var escaped = false
        for scalar in value.unicodeScalars {
            if quoted {
                if escaped {
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if scalar == "\"" {
                    quoted = false
                }
            } else if scalar == ";" {
                pieces.append(piece)
                piece = ""
                continue
            } else if scalar == "\"" {
                quoted = true
            }
            piece.unicodeScalars.append(scalar)
        }
        pieces.append(piece)
        var parameters: [String: String] = [:]
        for piece in pieces.dropFirst() {
            guard let equals = piece.firstIndex(of: "=") else { continue }
            let key = piece[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var text = piece[piece.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("\""), text.hasSuffix("\""), text.count >= 2 {
                text = String(text.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
            }
            if parameters[key] == nil { parameters[key] = text }
        }
        return parameters
    }
}
