/// The acknowledgements of one consumer channel, sent as few `basic.ack` frames as possible,
/// free of I/O so it can be tested alone.
///
/// A channel's delivery tags count up from 1. Acks that arrive together (a batch of requests
/// answered at once) and reach back to the oldest unsettled delivery go out as one ack with
/// `multiple` set: the broker then settles every delivery up to that tag. The others go out one
/// by one, at once; nothing waits for a later ack. The multiple ack always names a delivery
/// that is still unsettled, since RabbitMQ refuses one whose tag it no longer knows.
struct AcknowledgementRuns {
    /// Every delivery up to this tag is settled.
    private(set) var settledThrough: UInt64 = 0
    /// Settled deliveries above `settledThrough`, beyond a gap of unsettled ones.
    private var settledAbove: Set<UInt64> = []
    private var waiting: [UInt64] = []

    /// What to send: one ack with `multiple` (nil when none) and single acks.
    struct Frames: Equatable {
        var multiple: UInt64?
        var single: [UInt64]
    }

    var hasWaiting: Bool { !self.waiting.isEmpty }

    /// Queues an ack, to go out at the next ``flush()``.
    mutating func ack(_ tag: UInt64) {
        self.waiting.append(tag)
    }

    /// Records a settlement already sent on its own (a nack or a reject).
    mutating func settledAlone(_ tag: UInt64) {
        self.settledAbove.insert(tag)
        self.advance()
    }

    /// The frames for the acks queued since the last flush.
    mutating func flush() -> Frames {
        guard !self.waiting.isEmpty else { return Frames(multiple: nil, single: []) }
        self.settledAbove.formUnion(self.waiting)
        self.advance()
        var multiple: UInt64?
        var single: [UInt64] = []
        for tag in self.waiting {
            if tag <= self.settledThrough {
                multiple = max(multiple ?? 0, tag)
            } else {
                single.append(tag)
            }
        }
        self.waiting.removeAll(keepingCapacity: true)
        return Frames(multiple: multiple, single: single.sorted())
    }

    private mutating func advance() {
        while self.settledAbove.remove(self.settledThrough + 1) != nil { self.settledThrough += 1 }
    }
}
