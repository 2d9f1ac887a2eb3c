import MessengerContracts
import Synchronization

/// How many `POST /api/attachments` a gateway handles at once, for one user and in all.
///
/// An upload holds its body (up to 25 MiB), a copy being parsed and its base64 RPC message
/// (about 34 MiB) in the gateway, then waits as a message in RabbitMQ until media takes it
/// (8 at a time). Without a bound one user's parallel uploads grew the gateway by 88 MiB each
/// (an outside reviewer's measure in the fortieth session: about 200 at once would take 18 GB,
/// or push RabbitMQ past its memory alarm, which stops every publisher). Past the user's slots
/// the answer is 429 `rate_limited`, past the gateway's 503 `unavailable`, both with
/// `Retry-After`.
///
/// When every slot is taken, a new upload takes one from an upload still reading its body, of
/// another user, that holds more slots than the newcomer would, or that has been slow (under
/// ``slowRate`` on average, for ``slowAfter`` at least); the slowest of those. That upload is
/// answered 503 and its connection closed. Until the fifty-third session eight accounts, each
/// holding its two slots with bodies sent a byte at a time, kept every other upload of the
/// gateway refused for as long as the body deadline (five minutes), again and again.
final class UploadSlots: Sendable {
    static let perUser = 2
    static let inAll = 16
    /// Below this average rate, an upload still reading its body may lose its slot to a new one
    /// when none is free: a phone on a poor link sends a megabyte a minute or faster.
    static let slowRate = 16 * 1024
    static let slowAfter: Duration = .seconds(10)

    private let perUser: Int
    private let inAll: Int
    private let state = Mutex(State())
    private let nextID = Atomic<UInt64>(0)

    private struct State {
        var total = 0
        var byUser: [String: Int] = [:]
        /// The uploads still reading their bodies: those that may lose their slots.
        var reading: [UInt64: Reading] = [:]
        /// Uploads whose slots were taken, until they give them back.
        var evicted: Set<UInt64> = []

        mutating func release(_ user: String) {
            let left = self.byUser[user, default: 0] - 1
            self.byUser[user] = left > 0 ? left : nil
            self.total -= 1
        }
    }

    private struct Reading {
        var user: String
        var started: ContinuousClock.Instant
        var bytes = 0
        var evict: @Sendable () -> Void

        /// Bytes a second so far.
        func rate(at now: ContinuousClock.Instant) -> Double {
            let elapsed = (now - self.started) / .milliseconds(1) / 1000
            return elapsed > 0 ? Double(self.bytes) / elapsed : .infinity
        }
    }

    init(perUser: Int = UploadSlots.perUser, inAll: Int = UploadSlots.inAll) {
        self.perUser = perUser
        self.inAll = inAll
    }

    /// Runs `upload` in a slot of `user`'s, or throws the refusal without running it. The upload
    /// reads its body through ``UploadSlot/readBody(_:)``, which ends with `unavailable` if the
    /// slot is taken from it meanwhile.
    func withSlot<Result: Sendable>(
        for user: String, _ upload: (UploadSlot) async throws -> Result
    ) async throws -> Result {
        let slot = UploadSlot(id: self.nextID.wrappingAdd(1, ordering: .relaxed).newValue, slots: self)
        try self.take(for: user, id: slot.id, evict: { slot.eviction.fire() })
        defer { self.give(back: user, id: slot.id) }
        return try await upload(slot)
    }

    func take(for user: String, id: UInt64, now: ContinuousClock.Instant = .now, evict: @escaping @Sendable () -> Void)
        throws(ServiceError)
    {
        var evicted: (@Sendable () -> Void)?
        let refusal = self.state.withLock { state -> ServiceError? in
            let mine = state.byUser[user, default: 0]
            guard mine < self.perUser else {
                return .rateLimited("at most \(self.perUser) uploads at once", retryAfter: 1)
            }
            if state.total >= self.inAll {
                guard let victim = self.victim(in: state, for: user, holding: mine, now: now) else {
                    return .unavailable("too many uploads at once", retryAfter: 1)
                }
                let reading = state.reading.removeValue(forKey: victim)!
                state.evicted.insert(victim)
                state.release(reading.user)
                evicted = reading.evict
            }
            state.byUser[user] = mine + 1
            state.total += 1
            state.reading[id] = Reading(user: user, started: now, evict: evict)
            return nil
        }
        if let refusal { throw refusal }
        evicted?()
    }

    /// The upload whose slot a new one of `user`'s may take (see ``UploadSlots``).
    private func victim(in state: State, for user: String, holding mine: Int, now: ContinuousClock.Instant) -> UInt64? {
        var slowest: (id: UInt64, rate: Double)?
        for (id, reading) in state.reading where reading.user != user {
            let rate = reading.rate(at: now)
            let holdsMore = state.byUser[reading.user, default: 0] > mine + 1
            let isSlow = now - reading.started >= Self.slowAfter && rate < Double(Self.slowRate)
            guard holdsMore || isSlow, rate < slowest?.rate ?? .infinity else { continue }
            slowest = (id, rate)
        }
        return slowest?.id
    }

    /// Counts `bytes` more of the upload `id`'s body.
    func received(_ bytes: Int, id: UInt64) {
        self.state.withLock { $0.reading[id]?.bytes += bytes }
    }

    /// The upload `id` has its body: its slot is no longer taken from it. False when it was.
    func bodyRead(id: UInt64) -> Bool {
        self.state.withLock { state in
            guard !state.evicted.contains(id) else { return false }
            state.reading[id] = nil
            return true
        }
    }

    func give(back user: String, id: UInt64) {
        self.state.withLock { state in
            guard state.evicted.remove(id) == nil else { return }
            state.reading[id] = nil
            state.release(user)
        }
    }
}

/// One upload's slot (``UploadSlots``): reads the body unless the slot is taken from it.
struct UploadSlot: Sendable {
    let id: UInt64
    let slots: UploadSlots
    let eviction = UploadEviction()

    /// Runs `read`, which reads the body and reports what it received, until it ends or the slot
    /// is taken from it (then `unavailable`, and `read` is cancelled).
    func readBody<Body: Sendable>(
        _ read: @escaping @Sendable (_ received: @escaping @Sendable (Int) -> Void) async throws -> Body
    ) async throws -> Body {
        let slots = self.slots
        let id = self.id
        let eviction = self.eviction
        let body = try await withThrowingTaskGroup(of: Body?.self) { group in
            group.addTask { try await read { slots.received($0, id: id) } }
            group.addTask {
                await eviction.wait()
                return nil
            }
            defer { group.cancelAll() }
            return try await group.next() ?? nil
        }
        guard let body, slots.bodyRead(id: id) else {
            throw ServiceError.unavailable("the upload was too slow while others waited", retryAfter: 1)
        }
        return body
    }
}

/// Wakes an upload's body read when its slot is taken.
final class UploadEviction: Sendable {
    private enum State {
        case waiting(CheckedContinuation<Void, Never>?)
        case fired
    }

    private let state = Mutex(State.waiting(nil))

    /// Returns once ``fire()`` was called, or at once when the task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = self.state.withLock { state -> Bool in
                    guard case .waiting = state, !Task.isCancelled else { return true }
                    state = .waiting(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.resume(firing: false)
        }
    }

    func fire() { self.resume(firing: true) }

    private func resume(firing: Bool) {
        let continuation = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard case .waiting(let continuation) = state else { return nil }
            state = firing ? .fired : .waiting(nil)
            return continuation
        }
        continuation?.resume()
    }
}
