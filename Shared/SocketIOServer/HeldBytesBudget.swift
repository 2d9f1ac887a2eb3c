import Metrics
import Synchronization

/// Bytes a server holds on its users' behalf over all their connections, each user within a
/// share of it, so that one user's many connections cannot multiply what each may hold, nor
/// fill the whole and get everyone else refused. Past the share or the whole, the connection
/// whose bytes do not fit is closed. Two of them (``SocketIOCore``):
///
/// - binary attachments, from each one's arrival until its packet's command has run (a packet
///   still missing attachments has a deadline of its own). Without it an outside tester held
///   31 MB per socket, 418 MB with 12 sockets;
/// - the text of queued commands, from their arrival until they run. A connection's queue is
///   bounded (``SocketIOConnection``), and a closed connection's queue still runs, at the user's
///   command rate; without a share, a client that filled a queue, disconnected and did it again
///   kept every one of them in memory (a review in the forty-fourth session).
final class HeldBytesBudget: Sendable {
    /// 256 MiB of attachments: eight packets of 32 attachments of 1 MB (the default
    /// `maxPayload`) at once.
    static let attachmentLimit = 256 << 20
    /// 64 MiB of attachments a user: two packets of 32 attachments of 1 MB at once, or six
    /// `add_attachments` of ten photos from as many devices.
    static let attachmentUserShare = 64 << 20
    /// 32 MiB of queued commands a user: two connections' whole queues (16 MiB each), which a
    /// client only reaches by sending faster than its commands run for long.
    static let queuedCommandUserShare = 32 << 20

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
    /// What the budget holds now (`socketio_attachment_bytes_held`,
    /// `socketio_queued_command_bytes_held`).
    private let bytesHeld: Meter

    private struct State {
        var total = 0
        /// Only users holding something are here.
        var byUser: [String: Int] = [:]
    }

    init(limit: Int, userShare: Int, meter: String) {
        self.limit = limit
        self.userShare = userShare
        self.bytesHeld = Meter(label: meter)
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

/// What one packet's attachments (or one queued command) hold of a ``HeldBytesBudget``, and in
/// whose share.
struct AttachmentHold: Sendable {
    var user: String
    var bytes: Int
}

extension HeldBytesBudget {
    func release(_ hold: AttachmentHold?) {
        guard let hold else { return }
        self.release(hold.bytes, for: hold.user)
    }
}
