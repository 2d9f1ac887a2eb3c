import Synchronization

/// The bytes of binary attachments a server holds, over all its connections, for packets still
/// waiting for the rest of theirs. Each connection's packet is bounded on its own (the
/// decoder's `maximumAttachmentBytes`, a stall limit); this bounds their sum, which many
/// connections of one user could otherwise multiply (an outside tester held 31 MB per socket,
/// 418 MB with 12 sockets). Past it, the connection whose attachment does not fit is closed.
final class AttachmentBudget: Sendable {
    /// 256 MiB: 32 packets at the decoder's bound at once.
    static let defaultLimit = 256 << 20

    let limit: Int
    private let used = Atomic<Int>(0)

    init(limit: Int) {
        self.limit = limit
    }

    var inUse: Int { self.used.load(ordering: .relaxed) }

    /// Takes `bytes` from the budget; false (and nothing taken) when they do not fit.
    func reserve(_ bytes: Int) -> Bool {
        let after = self.used.wrappingAdd(bytes, ordering: .relaxed).newValue
        guard after > self.limit else { return true }
        self.used.wrappingSubtract(bytes, ordering: .relaxed)
        return false
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        self.used.wrappingSubtract(bytes, ordering: .relaxed)
    }
}
