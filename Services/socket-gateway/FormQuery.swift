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

    private static func decode(_ text: Substring) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }
}
