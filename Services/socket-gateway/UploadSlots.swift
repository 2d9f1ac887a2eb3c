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
final class UploadSlots: Sendable {
    static let perUser = 2
    static let inAll = 16

    private let perUser: Int
    private let inAll: Int
    private let taken = Mutex<(total: Int, byUser: [String: Int])>((0, [:]))

    init(perUser: Int = UploadSlots.perUser, inAll: Int = UploadSlots.inAll) {
        self.perUser = perUser
        self.inAll = inAll
    }

    /// Runs `upload` in a slot of `user`'s, or throws the refusal without running it.
    func withSlot<Result: Sendable>(for user: String, _ upload: () async throws -> Result) async throws -> Result {
        try self.take(for: user)
        defer { self.give(back: user) }
        return try await upload()
    }

    func take(for user: String) throws(ServiceError) {
        let refusal = self.taken.withLock { taken -> ServiceError? in
            let mine = taken.byUser[user, default: 0]
            guard mine < self.perUser else {
                return .rateLimited("at most \(self.perUser) uploads at once", retryAfter: 1)
            }
            guard taken.total < self.inAll else { return .unavailable("too many uploads at once", retryAfter: 1) }
            taken.byUser[user] = mine + 1
            taken.total += 1
            return nil
        }
        if let refusal { throw refusal }
    }

    func give(back user: String) {
        self.taken.withLock { taken in
            let left = taken.byUser[user, default: 0] - 1
            taken.byUser[user] = left > 0 ? left : nil
            taken.total -= 1
        }
    }
}
