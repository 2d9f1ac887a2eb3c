import Metrics
import Synchronization

/// The bytes of binary attachments a server holds over all its connections: from each
/// attachment's arrival until its packet's command has run (a packet still missing attachments
/// has a deadline of its own). Without it many connections of one user could multiply what
/// each holds (an outside tester held 31 MB per socket, 418 MB with 12 sockets).
///
/// Each user may hold a share of it, so that one user's many sockets cannot fill it and get
/// everyone else's attachments refused. Past the share or the whole, the connection whose
/// attachment does not fit is closed.
final class AttachmentBudget: Sendable {
    /// 256 MiB: eight packets of 32 attachments of 1 MB (the default `maxPayload`) at once.
    static let defaultLimit = 256 << 20
    /// 64 MiB a user: two packets of 32 attachments of 1 MB at once, or six `add_attachments`
    /// of ten photos from as many devices.
    static let defaultUserShare = 64 << 20

    /// What ``reserve(_:for:)`` did.
    enum Reservation: Equatable {
        case reserved
        /// The user holds their share already; nothing was taken.
        case overUserShare
        /// The server holds its whole budget already; nothing was taken.
        case overLimit
    }

    let limit: Int
    let userShare: Int
    private let state = Mutex(State())
    /// `socketio_attachment_bytes_held`: what the budget holds now.
    private let bytesHeld = Meter(label: "socketio_attachment_bytes_held")

    private struct State {
        var total = 0
        /// Only users holding something are here.
        var byUser: [String: Int] = [:]
    }

    init(limit: Int = AttachmentBudget.defaultLimit, userShare: Int = AttachmentBudget.defaultUserShare) {
        self.limit = limit
        self.userShare = userShare
    }

    var inUse: Int { self.state.withLock { $0.total } }

    func inUse(by user: String) -> Int { self.state.withLock { $0.byUser[user, default: 0] } }

    /// Takes `bytes` from the budget and from `user`'s share, or nothing when they do not fit.
    func reserve(_ bytes: Int, for user: String) -> Reservation {
        self.state.withLock { state in
            let held = state.byUser[user, default: 0]
            guard held + bytes <= self.userShare else { return .overUserShare }
            guard state.total + bytes <= self.limit else { return .overLimit }
            state.byUser[user] = held + bytes
            state.total += bytes
            self.bytesHeld.set(state.total)
            return .reserved
        }
    }

    /// Gives back `bytes` that ``reserve(_:for:)`` took for `user`.
    func release(_ bytes: Int, for user: String) {
        guard bytes > 0 else { return }
        self.state.withLock { state in
            let left = state.byUser[user, default: 0] - bytes
            state.byUser[user] = left > 0 ? left : nil
            state.total -= bytes
            self.bytesHeld.set(state.total)
        }
    }
}

/// What one packet's attachments hold of an ``AttachmentBudget``, and in whose share.
struct AttachmentHold: Sendable {
    var user: String
    var bytes: Int
}

extension AttachmentBudget {
    func release(_ hold: AttachmentHold?) {
        guard let hold else { return }
        self.release(hold.bytes, for: hold.user)
    }
}
