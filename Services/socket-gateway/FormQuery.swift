import Foundation
import Hummingbird

/// A request's query parameters as HTML forms, `URLSearchParams` and Python's `requests` write
/// them (`application/x-www-form-urlencoded`): `+` is a space and `%2B` a plus. Hummingbird's
/// `queryParameters` decodes the percent escapes only, so a search sent as `query=Anna+Lee`
/// would look for "Anna+Lee". A name given twice keeps its first value. A name given empty
/// (`?cursor=`, or bare) is as if absent: clients write `cursor=${next ?? ''}` for a first page.
struct FormQuery {
    private var values: [String: String] = [:]

    init(_ request: Request) {
        for pair in (request.uri.query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            if self.values[name] == nil { self.values[name] = parts.count > 1 ? Self.decode(parts[1]) : "" }
        }
    }

    subscript(name: String) -> String? { self.values[name].flatMap { $0.isEmpty ? nil : $0 } }

    /// `name`'s value as a whole number, nil when absent. Digits past `Int`'s range (with an
    /// optional sign) are its largest or smallest value, so that the service answers them as
    /// out of its range (422) like any other; anything else is `malformed` (400) with `message`.
    /// Until the forty-third session `limit=99999999999999999999` was 400.
    func wholeNumber(_ name: String, orElse message: String) throws -> Int? {
        guard let text = self[name] else { return nil }
        if let value = Int(text) { return value }
        let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
        guard !digits.isEmpty, digits.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) else {
            throw RESTError.malformed(message)
        }
        return text.first == "-" ? Int.min : Int.max
    }

    private static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}
