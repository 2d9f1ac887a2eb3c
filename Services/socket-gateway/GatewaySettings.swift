import MessengerRedis
import MessengerServiceKit
import MessengerTokens
import SocketIOServer

/// The gateway's settings: the shared ones plus its public listener, Redis and token checks.
struct GatewaySettings: Sendable {
    var service: ServiceSettings
    /// The public HTTP + Socket.IO listener (`HOST`, `PORT`).
    var host: String
    var port: Int
    var redis: RedisConfiguration
    /// `JWT_ISSUER` and `JWT_AUDIENCE`, as auth signs them.
    var audience: TokenAudience
    /// How often the gateway fetches the revoked sessions from auth, beside the announcements
    /// (`REVOKED_SESSIONS_SYNC_SECONDS`).
    var revokedSessionsSync: Duration
    /// `TRUST_PROXY=true`: take the client address from `X-Forwarded-For`.
    var trustProxy: Bool
    /// How long an idle keep-alive HTTP connection stays open (`HTTP_IDLE_TIMEOUT_SECONDS`).
    var httpIdleTimeout: Duration
    /// Engine.IO: `SOCKETIO_PING_INTERVAL_MS`, `SOCKETIO_PING_TIMEOUT_MS`, `SOCKETIO_MAX_PAYLOAD`,
    /// `CORS_ORIGIN` (empty for no CORS headers).
    var engine: EngineConfiguration
    /// The media service's local store (`MEDIA_DIR`), served under `/media/`, and the upload
    /// limit (`MEDIA_MAX_UPLOAD_BYTES`).
    var mediaDirectory: String
    var maximumUpload: Int
    /// How long an upload's body may take to arrive, whole (`UPLOAD_BODY_TIMEOUT_SECONDS`).
    var uploadBodyTimeout: Duration
    /// Socket commands per user and second, and their burst (`SOCKET_COMMAND_RATE`,
    /// `SOCKET_COMMAND_BURST`; a rate of 0 is no limit).
    var commandRate: UserRate
    /// Authenticated REST requests per user and second, and their burst (`REST_REQUEST_RATE`,
    /// `REST_REQUEST_BURST`; a rate of 0 is no limit).
    var requestRate: UserRate
    /// How long after it went out an event a socket has not acknowledged is pushed to it again
    /// by the gateway, then twice as long each time (`SOCKET_REDELIVERY_SECONDS`; delivery's own
    /// retries come first).
    var redeliveryAfter: Duration

    init(environment: ServiceEnvironment) throws {
        self.service = try ServiceSettings(
            name: "socket-gateway", adminPortVariable: "GATEWAY_ADMIN_PORT", defaultAdminPort: 9100, environment: environment)
        self.host = environment.string("HOST", default: "127.0.0.1")
        self.port = try environment.port("PORT", default: 5000)
        self.redis = try RedisConfiguration(environment: environment)
        self.audience = TokenAudience(
            issuer: environment.string("JWT_ISSUER", default: "messenger-auth"),
            audience: environment.string("JWT_AUDIENCE", default: "messenger"))
        self.revokedSessionsSync = .seconds(
            try environment.int("REVOKED_SESSIONS_SYNC_SECONDS", default: 60, in: 1...3600))
        self.trustProxy = try environment.choice("TRUST_PROXY", default: "false", among: ["true", "false"]) == "true"
        self.httpIdleTimeout = .seconds(try environment.int("HTTP_IDLE_TIMEOUT_SECONDS", default: 60, in: 1...3600))
        var engine = EngineConfiguration()
        engine.pingInterval = try environment.milliseconds("SOCKETIO_PING_INTERVAL_MS", default: 25_000, in: 100...600_000)
        engine.pingTimeout = try environment.milliseconds("SOCKETIO_PING_TIMEOUT_MS", default: 20_000, in: 100...600_000)
        engine.maxPayload = try environment.int("SOCKETIO_MAX_PAYLOAD", default: 1_000_000, in: 1024...100_000_000)
        // Set but empty is no CORS at all (until the thirty-eighth session it was `*`).
        engine.corsOrigin = environment.asSet("CORS_ORIGIN").map { $0.isEmpty ? nil : $0 } ?? "*"
        self.engine = engine
        self.mediaDirectory = environment.string("MEDIA_DIR", default: "media")
        // An upload travels base64 in one RPC message: 64 MiB stays under RabbitMQ's 128 MiB
        // `max_message_size` (see AMQPConfiguration.maximumMessageSize).
        self.maximumUpload = try environment.int("MEDIA_MAX_UPLOAD_BYTES", default: 25 * 1024 * 1024, in: 1...(64 * 1024 * 1024))
        self.uploadBodyTimeout = .seconds(try environment.int("UPLOAD_BODY_TIMEOUT_SECONDS", default: 300, in: 1...3600))
        self.commandRate = UserRate(
            rate: try environment.int("SOCKET_COMMAND_RATE", default: 30, in: 0...100_000),
            burst: try environment.int("SOCKET_COMMAND_BURST", default: 120, in: 1...1_000_000))
        self.requestRate = UserRate(
            rate: try environment.int("REST_REQUEST_RATE", default: 10, in: 0...100_000),
            burst: try environment.int("REST_REQUEST_BURST", default: 60, in: 1...1_000_000))
        self.redeliveryAfter = .seconds(try environment.int("SOCKET_REDELIVERY_SECONDS", default: 600, in: 1...86_400))
    }
}
