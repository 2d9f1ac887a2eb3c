import NIOCore

/// When the bytes waiting for one client (a WebSocket's writes while its channel is not
/// writable, a polling session's queue) close its session.
///
/// A client that reads, slowly, makes progress (its socket takes bytes, its GETs come); one that
/// does not read makes none. Size alone does not tell them apart: a catch-up or a burst of
/// receipts can put megabytes in front of a phone that reads them at 1 MB/s. So past ``limit``
/// a session is closed only once it made no progress for ``stall``, and past ``hardLimit``
/// (eight times as much) at once, which bounds what a client that reads a byte now and then can
/// make the gateway hold.
struct EngineBacklog: Sendable {
    enum Problem: String, Sendable {
        case doesNotRead = "does not read"
        case readsTooSlowly = "reads too slowly"
    }

    var limit: Int
    var hardLimit: Int { 8 * self.limit }
    static let stall = TimeAmount.seconds(10)

    /// Why a session with `bytes` waiting, whose client last made progress `sinceProgress` ago,
    /// must be closed; nil when it may go on.
    func problem(bytes: Int, sinceProgress: TimeAmount) -> Problem? {
        if bytes > self.hardLimit { return .readsTooSlowly }
        if bytes > self.limit && sinceProgress > Self.stall { return .doesNotRead }
        return nil
    }
}
