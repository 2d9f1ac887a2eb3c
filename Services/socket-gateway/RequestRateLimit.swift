import MessengerContracts

/// How many authenticated REST requests one user may make on this gateway:
/// `REST_REQUEST_RATE` a second with bursts of `REST_REQUEST_BURST` (a rate of 0 is no limit),
/// over all the user's connections here. A request past it is answered 429 `rate_limited` with
/// `Retry-After` (the whole seconds until it would pass) and costs nothing downstream: unlike a
/// socket command, a REST request can be refused, and the client knows when to come back.
///
/// Until the fifty-seventh session REST had no limit: the socket commands were bounded
/// (``CommandRateLimit``), but one token could ask for user searches and history pages as
/// fast as the gateway answered, each a query in auth's or messaging's database.
final class RequestRateLimit: Sendable {
    private let buckets: UserTokenBuckets

    init(settings: UserRate) {
        self.buckets = UserTokenBuckets(settings)
    }

    /// Takes one of `user`'s requests, or throws `rate_limited` when none is left now.
    func admit(user: String) throws(ServiceError) {
        let wait = self.buckets.take(user: user, lend: false)
        guard wait > .zero else { return }
        let seconds = wait.components.seconds + (wait.components.attoseconds > 0 ? 1 : 0)
        throw .rateLimited("too many requests; try again later", retryAfter: Int(max(1, seconds)))
    }
}
