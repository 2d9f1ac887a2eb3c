import Metrics
import Synchronization

/// Bytes a server holds on its users' behalf over all their connections, each user within a
/// share of it, so that one user's many connections cannot multiply what each may hold, nor
/// fill the whole and get everyone else refused. Past the share or the whole, the connection
/// whose bytes do not fit is closed, unless the whole is full and others hold more in packets
/// still coming in (``UnfinishedHolder``): then theirs are taken back. Two of them
/// (``SocketIOCore``):
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

    /// What ``reserve(_:for:holder:)`` did.
    enum Reservation: Equatable {
        case reserved
        /// The user holds their share already; nothing was taken.
        case overUserShare
        /// The server holds its whole budget already, and nobody holding more in unfinished
        /// packets could give it back; nothing was taken.
        case overLimit
        /// The holder's bytes were taken back for someone holding less; nothing was taken, and
        /// the holder's connection is closing.
        case evicted
    }

    /// What ``complete(_:)`` found of a holder's packet.
    enum Completion: Equatable {
        /// What the packet holds, in its user's share, until its command has run.
        case held(AttachmentHold?)
        /// The packet's bytes were taken back: it must not run, and its connection is closing.
        case evicted
    }

    let limit: Int
    let userShare: Int
    private let state = Mutex(State())
    private let nextHolder = Atomic<UInt64>(0)
    /// What the budget holds now (`socketio_attachment_bytes_held`,
    /// `socketio_queued_command_bytes_held`).
    private let bytesHeld: Meter
    /// Holders whose bytes were taken back (`socketio_attachment_evictions_total`).
    private let evictions: Counter

    private struct State {
        var total = 0
        /// Only users holding something are here.
        var byUser: [String: Int] = [:]
        /// The packets still coming in, by holder: what may be taken back.
        var unfinished: [UInt64: Unfinished] = [:]
        /// Holders whose bytes were taken back and who have not noticed yet.
        var evicted: Set<UInt64> = []

        mutating func release(_ bytes: Int, for user: String) {
            let left = self.byUser[user, default: 0] - bytes
            self.byUser[user] = left > 0 ? left : nil
            self.total -= bytes
        }

        /// Of the users other than `user` with packets still coming in, the one holding the most
        /// in all, if that is more than `bytes`.
        func biggestUnfinishedHolder(other user: String, holdingMoreThan bytes: Int) -> String? {
            var biggest: (user: String, held: Int)?
            for unfinished in self.unfinished.values where unfinished.user != user {
                let held = self.byUser[unfinished.user, default: 0]
                if held > bytes, held > biggest?.held ?? 0 { biggest = (unfinished.user, held) }
            }
            return biggest?.user
        }

        /// Takes back every packet `user` has still coming in; what closes their connections.
        mutating func evict(_ user: String) -> [@Sendable () -> Void] {
            var closes: [@Sendable () -> Void] = []
            for (id, unfinished) in self.unfinished where unfinished.user == user {
                self.unfinished[id] = nil
                self.evicted.insert(id)
                self.release(unfinished.bytes, for: user)
                closes.append(unfinished.evict)
            }
            return closes
        }
    }

    private struct Unfinished {
        var user: String
        var bytes: Int
        var evict: @Sendable () -> Void
    }

    /// `metrics`: the prefix of the budget's metrics' names.
    init(limit: Int, userShare: Int, metrics: String) {
        self.limit = limit
        self.userShare = userShare
        self.bytesHeld = Meter(label: "\(metrics)_bytes_held")
        self.evictions = Counter(label: "\(metrics)_evictions_total")
    }

    var inUse: Int { self.state.withLock { $0.total } }

    func inUse(by user: String) -> Int { self.state.withLock { $0.byUser[user, default: 0] } }

    /// A new holder's identity, for a connection's packets still coming in.
    func makeHolderID() -> UInt64 {
        self.nextHolder.wrappingAdd(1, ordering: .relaxed).newValue
    }

    /// Takes `bytes` from the budget and from `user`'s share, or nothing when they do not fit.
    ///
    /// With a `holder`, the bytes belong to a packet still coming in, and may be taken back
    /// until ``complete(_:)``. When the whole is full, the user holding the most of it in such
    /// packets, if they hold more than `user` would with `bytes`, has all of theirs taken back
    /// and their connections closed (`evict`), until `bytes` fit: a few accounts filling the
    /// budget with packets they never finish get other users' attachments refused no longer,
    /// and everyone keeps at least what the biggest holder has (until the fifty-third session
    /// the next sender was closed, whoever held the bytes).
    func reserve(_ bytes: Int, for user: String, holder: UnfinishedHolder? = nil) -> Reservation {
        var evicted: [@Sendable () -> Void] = []
        let reservation = self.state.withLock { state -> Reservation in
            if let holder, state.evicted.contains(holder.id) { return .evicted }
            let held = state.byUser[user, default: 0]
            guard held + bytes <= self.userShare else { return .overUserShare }
            if state.total + bytes > self.limit {
                // Worked out on a copy, and applied only if it makes room: victims are chosen by
                // all they hold, and only their unfinished bytes go (the session's last review).
                var after = state
                while after.total + bytes > self.limit {
                    guard let victim = after.biggestUnfinishedHolder(other: user, holdingMoreThan: held + bytes) else {
                        evicted = []
                        return .overLimit
                    }
                    evicted += after.evict(victim)
                }
                state = after
            }
            state.byUser[user] = held + bytes
            state.total += bytes
            self.bytesHeld.set(state.total)
            if let holder {
                state.unfinished[holder.id, default: Unfinished(user: user, bytes: 0, evict: holder.evict)].bytes += bytes
            }
            return .reserved
        }
        if !evicted.isEmpty { self.evictions.increment(by: evicted.count) }
        for evict in evicted { evict() }
        return reservation
    }

    /// The packet `holder` had coming in is whole: what it holds stays in its user's share,
    /// no longer to be taken back, until the packet's command has run (``release(_:)``).
    func complete(_ holder: UInt64) -> Completion {
        self.state.withLock { state in
            if state.evicted.remove(holder) != nil { return .evicted }
            guard let unfinished = state.unfinished.removeValue(forKey: holder) else { return .held(nil) }
            return .held(AttachmentHold(user: unfinished.user, bytes: unfinished.bytes))
        }
    }

    /// Gives back what `holder`'s packet still coming in holds (it was given up, or its
    /// connection closed); true when it had been taken back already.
    @discardableResult
    func abandon(_ holder: UInt64) -> Bool {
        let wasEvicted = self.state.withLock { state -> Bool in
            if state.evicted.remove(holder) != nil { return true }
            guard let unfinished = state.unfinished.removeValue(forKey: holder) else { return false }
            state.release(unfinished.bytes, for: unfinished.user)
            self.bytesHeld.set(state.total)
            return false
        }
        return wasEvicted
    }

    /// Gives back `bytes` that ``reserve(_:for:holder:)`` took for `user` without a holder.
    func release(_ bytes: Int, for user: String) {
        guard bytes > 0 else { return }
        self.state.withLock { state in
            state.release(bytes, for: user)
            self.bytesHeld.set(state.total)
        }
    }
}

/// A connection with a packet whose attachments are still coming in (``HeldBytesBudget``): who
/// it is, and how to close it when its bytes are taken back.
struct UnfinishedHolder: Sendable {
    var id: UInt64
    var evict: @Sendable () -> Void
}

/// What one packet's attachments (or one queued command) hold of a ``HeldBytesBudget``, and in
/// whose share.
struct AttachmentHold: Sendable, Equatable {
    var user: String
    var bytes: Int
}

extension HeldBytesBudget {
    func release(_ hold: AttachmentHold?) {
        guard let hold else { return }
        self.release(hold.bytes, for: hold.user)
    }
}
