import NIOCore

/// When a binary packet's attachments must all have come: ``base`` after its header, plus
/// ``timePerKiB`` for each KiB that came, and never past ``cap`` after the header.
///
/// One fixed deadline (60 s until the fifty-fifth session) failed every `add_attachments` of
/// many files on a slow uplink, again on each retry: 20 files of 1 MB need about 2.7 Mbit/s to
/// come within 60 s (a review). The time each KiB earns keeps a link of 32 KiB/s or more (about
/// a quarter of a Mbit/s) ahead of its deadline, and a client that trickles bytes gains no more
/// than they earn: what its packet holds stays counted in the attachment budget meanwhile.
struct AttachmentDeadline: Equatable, Sendable {
    static let base = TimeAmount.seconds(60)
    /// The time each KiB received earns: 32 KiB a second.
    static let timePerKiB = TimeAmount.microseconds(31_250)
    static let cap = TimeAmount.minutes(10)

    /// When the header came.
    let started: NIODeadline
    private(set) var receivedBytes = 0

    init(started: NIODeadline) {
        self.started = started
    }

    /// The deadline with what came so far.
    var deadline: NIODeadline {
        let earned = TimeAmount.nanoseconds(Int64(self.receivedBytes / 1024) * Self.timePerKiB.nanoseconds)
        return self.started + min(Self.base + earned, Self.cap)
    }

    /// Counts an attachment of `bytes`.
    mutating func received(_ bytes: Int) {
        self.receivedBytes += bytes
    }
}
