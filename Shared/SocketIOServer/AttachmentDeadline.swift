import NIOCore

/// When a binary packet's attachments must all have come: ``base`` after its header, and the
/// time of one attachment as large as a message may be (`maxPayload`), plus ``timePerKiB`` for
/// each KiB that came, and never past ``cap`` after the header. (Credited only once a whole
/// attachment came, so the first has its own time: with a `maxPayload` of 4 MB, one file at
/// 32 KiB/s takes two minutes; the session's diff review.)
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
    /// The largest attachment's time.
    let firstAttachment: TimeAmount
    private(set) var receivedBytes = 0

    init(started: NIODeadline, maxPayload: Int) {
        self.started = started
        self.firstAttachment = Self.time(of: maxPayload)
    }

    /// The deadline with what came so far.
    var deadline: NIODeadline {
        self.started + min(Self.base + self.firstAttachment + Self.time(of: self.receivedBytes), Self.cap)
    }

    /// What `bytes` earn.
    private static func time(of bytes: Int) -> TimeAmount {
        .nanoseconds(Int64(bytes / 1024) * Self.timePerKiB.nanoseconds)
    }

    /// Counts an attachment of `bytes`.
    mutating func received(_ bytes: Int) {
        self.receivedBytes += bytes
    }
}
