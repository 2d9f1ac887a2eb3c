/// When the caller of the request the current task serves stops waiting: the RPC's deadline
/// (`RPCContext.deadline`), bound by every service around each RPC it serves. A database call
/// made while it is bound waits for a pooled connection until then at most, where it would
/// otherwise wait the pool's whole lease limit and then do work no one waits for.
public enum RequestDeadline {
    @TaskLocal public static var current: ContinuousClock.Instant?
}
