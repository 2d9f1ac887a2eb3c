import Synchronization

/// The bytes of binary attachments a server holds over all its connections: from each
/// attachment's arrival until its packet's command has run (a packet still missing attachments
/// has a deadline of its own). Without it many connections of one user could multiply what
/// each holds (an outside tester held 31 MB per socket, 418 MB with 12 sockets). Past it, the
/// connection whose attachment does not fit is closed.
final class AttachmentBudget: Sendable {
    /// 256 MiB: eight packets of 32 attachments of 1 MB (the default `maxPayload`) at once.
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
