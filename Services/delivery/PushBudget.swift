import Synchronization

/// How many bytes of pushes the domain-event consumer may have waiting for the broker's
/// confirm at once (each push is a copy of its event's data for one recipient, kept until
/// confirmed so that it can be sent again after a reconnect).
///
/// The consumer's prefetch bounds the events in flight, not their pushes: 256 events of a
/// 256-member group, each with 24 KB of data (a 4,000-character body of escaped control
/// characters), are 65,536 pushes, about 1.6 GB, and until the forty-ninth session a batch
/// built them all at once (a review). A batch is now recorded in chunks
/// (``DomainEventConsumer/chunks(_:bytes:)``), and a chunk waits here until what was pushed
/// before it is confirmed enough to leave room for it. A chunk larger than the whole budget
/// goes once nothing else is in flight. At graceful shutdown the bound is lifted: the batch
/// under way is recorded and handed on whole, as before, even with the broker gone.
final class PushBudget: Sendable {
    private struct State {
        var inFlight = 0
        var waiter: (bytes: Int, resume: CheckedContinuation<Void, Never>)?
        var bounded = true
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
    }

    /// Returns once `bytes` more may be pushed, and counts them in flight. One caller at a
    /// time (the consumer's loop).
    func take(_ bytes: Int) async {
        // Cancelled (a sibling service failed, no graceful shutdown), nothing may give back
        // what the wait is for: the bound is lifted, as at graceful shutdown.
        await withTaskCancellationHandler {
            await self.wait(for: bytes)
        } onCancel: {
            self.stopBounding()
        }
    }

    private func wait(for bytes: Int) async {
        await withCheckedContinuation { (resume: CheckedContinuation<Void, Never>) in
            let now = self.state.withLock { state in
                guard !state.bounded || state.inFlight == 0 || state.inFlight + bytes <= self.limit else {
                    precondition(state.waiter == nil, "PushBudget.take has one caller at a time")
                    state.waiter = (bytes, resume)
                    return false
                }
                state.inFlight += bytes
                return true
            }
            if now { resume.resume() }
        }
    }

    /// `bytes` taken before were confirmed, or will not be pushed.
    func give(_ bytes: Int) {
        let resume = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.inFlight -= bytes
            return Self.wakeIfRoom(&state, limit: self.limit)
        }
        resume?.resume()
    }

    /// Lifts the bound (graceful shutdown, cancellation): the waiting caller goes on, and so
    /// does every later one.
    func stopBounding() {
        let resume = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.bounded = false
            return Self.wakeIfRoom(&state, limit: self.limit)
        }
        resume?.resume()
    }

    /// Bytes counted in flight now.
    var inFlight: Int { self.state.withLock { $0.inFlight } }

    private static func wakeIfRoom(_ state: inout State, limit: Int) -> CheckedContinuation<Void, Never>? {
        guard let waiter = state.waiter,
            !state.bounded || state.inFlight == 0 || state.inFlight + waiter.bytes <= limit
        else { return nil }
        state.waiter = nil
        state.inFlight += waiter.bytes
        return waiter.resume
    }
}
