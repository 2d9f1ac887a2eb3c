/// Engine.IO server settings, sent to clients in the handshake.
public struct EngineConfiguration: Sendable {
    public var pingInterval: Duration = .seconds(25)
    public var pingTimeout: Duration = .seconds(20)
    /// The largest HTTP long-polling body or WebSocket message, in bytes.
    public var maxPayload: Int = 1_000_000
    /// Whether polling clients are offered the upgrade to WebSocket.
    public var allowUpgrades = true
    /// `Access-Control-Allow-Origin` for long-polling requests; nil sends no CORS headers.
    public var corsOrigin: String? = "*"
    /// Clients that open a session but never send CONNECT are closed after this long.
    public var connectTimeout: Duration = .seconds(45)
    /// An upgrade whose probe was answered but that the client does not complete (`5`) within
    /// this is given up: the probing WebSocket is closed and the session goes on polling. A
    /// WebSocket opened with a session's sid that sends no probe (`2probe`) within this is closed.
    public var upgradeTimeout: Duration = .seconds(10)

    /// How long a sender pacing itself on the client (``EngineSession/waitForRoom()``: a
    /// replay's slices) waits for room before the client is taken for one that does not read
    /// and its session is closed, as a transport failure (the client reconnects and catches up
    /// from what it has). A minute: a slice of a replay is at most about 1.5 MB, which a client
    /// reading at 25 KB/s takes within it.
    public var longestWaitForRoom: Duration = .seconds(60)
    /// The longest a long-polling POST's answer is held while the layer above has too much to do
    /// (``EngineSession/holdPostWhilePaused()``): under python-engineio's 5 s for a POST.
    public var longestPostHold: Duration = .seconds(2)

    public init() {}

    /// Bytes waiting for a client that does not read (a WebSocket whose channel is not
    /// writable) or does not poll, past which its session is closed if it made no progress for
    /// a while (``EngineBacklog``): buffering without end would let one client take the
    /// gateway's memory. Durable events come back through the client's catch-up.
    var maximumBacklog: Int { max(4 << 20, 4 * self.maxPayload) }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}
