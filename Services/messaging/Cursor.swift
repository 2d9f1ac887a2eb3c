import Foundation
import MessengerContracts

/// The opaque keyset cursors of the paginated lists: base64url of a small versioned string, so
/// clients cannot build one by accident and the server can change the format.
enum Cursor {
    /// A position in the thread list: after the thread `id` whose last activity was at
    /// `activity` (microseconds since 1970).
    struct ThreadPosition: Equatable {
        var activity: Int64
        var id: UUID
    }

    static func encode(_ position: ThreadPosition) -> String {
        Self.wrap("t1:\(position.activity):\(position.id.lowercasedText)")
    }

    /// The thread list's `cursor`.
    static func threadPosition(_ cursor: String) throws -> ThreadPosition {
        let parts = try Self.unwrap(cursor, field: "cursor").split(separator: ":")
        guard parts.count == 3, parts[0] == "t1", let activity = Int64(parts[1]), let id = UUID(text: String(parts[2]))
        else { throw Self.invalid("cursor") }
        return ThreadPosition(activity: activity, id: id)
    }

    /// A position in `thread`'s messages: before the message with this `seq`.
    static func encode(beforeSeq seq: Int64, in thread: UUID) -> String {
        Self.wrap("m2:\(thread.lowercasedText):\(seq)")
    }

    /// The message list's `before`, for `thread`'s messages. A cursor of another thread is not
    /// valid (its position would mean nothing here). A cursor of the first format (`m1`, which
    /// named no thread, until the fortieth session) is still taken, so that a client paging
    /// across an upgrade goes on.
    static func beforeSeq(_ cursor: String, in thread: UUID) throws -> Int64 {
        let parts = try Self.unwrap(cursor, field: "before").split(separator: ":")
        let seq: Int64?
        switch (parts.first, parts.count) {
        case ("m1", 2): seq = Int64(parts[1])
        case ("m2", 3) where UUID(text: String(parts[1])) == thread: seq = Int64(parts[2])
        default: seq = nil
        }
        guard let seq, seq > 0 else { throw Self.invalid("before") }
        return seq
    }

    /// The error for a cursor that is not one of ours, naming the query parameter it came in.
    private static func invalid(_ field: String) -> ServiceError {
        .invalidArgument("\(field) is not valid: pass a nextCursor as it came")
    }

    private static func wrap(_ text: String) -> String {
        Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    private static func unwrap(_ cursor: String, field: String) throws -> String {
        guard cursor.count <= 200 else { throw Self.invalid(field) }
        var base64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else {
            throw Self.invalid(field)
        }
        return text
    }
}
