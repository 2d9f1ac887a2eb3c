import Foundation
import MessengerContracts

/// A place in the order sessions ended (`ended_sessions`, by `ended_at` then `family_id`), as
/// auth hands it to gateways: `<microseconds since 1970>` or `<microseconds>:<session>`. Whole
/// microseconds, as PostgreSQL keeps them: a `Date` read from a row and bound again may come
/// back a microsecond off, which would skip or repeat sessions ended at the same instant (a
/// batch of expired sessions shares one).
struct EndedSessionsPlace: Equatable {
    /// `ended_at` in microseconds since 1970.
    var microseconds: Int64
    /// The last session listed that ended at ``microseconds``; nil: none was.
    var after: UUID?

    /// The year 9999, about.
    static let latest: Int64 = 253_402_300_799_000_000

    var text: String { self.after.map { "\(self.microseconds):\($0.lowercasedText)" } ?? "\(self.microseconds)" }

    init(microseconds: Int64, after: UUID? = nil) {
        self.microseconds = microseconds
        self.after = after
    }

    /// Reads a place from ``text``; throws `invalid_argument` for anything else.
    init(_ text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        // Within PostgreSQL's timestamps, and after 1970: auth gives no other.
        guard let microseconds = Int64(parts[0]), (0...Self.latest).contains(microseconds) else {
            throw ServiceError.invalidArgument("endedSince: not a place auth gave")
        }
        self.microseconds = microseconds
        if parts.count == 2 {
            guard let after = UUID(uuidString: String(parts[1])) else {
                throw ServiceError.invalidArgument("endedSince: not a place auth gave")
            }
            self.after = after
        }
    }
}
