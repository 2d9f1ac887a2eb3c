import MessengerRedis
import MessengerServiceKit
import MessengerTokens

/// The gateway's settings: the shared ones plus its public listener, Redis and token checks.
struct GatewaySettings: Sendable {
    var service: ServiceSettings
    /// The public HTTP + Socket.IO listener (`HOST`, `PORT`).
    var host: String
    var port: Int
    var redis: RedisConfiguration
    /// `JWT_ISSUER` and `JWT_AUDIENCE`, as auth signs them.
    var audience: TokenAudience
    /// `TRUST_PROXY=true`: take the client address from `X-Forwarded-For`.
    var trustProxy: Bool

    init(environment: ServiceEnvironment) throws {
        self.service = try ServiceSettings(
            name: "socket-gateway", adminPortVariable: "GATEWAY_ADMIN_PORT", defaultAdminPort: 9100, environment: environment)
        self.host = environment.string("HOST", default: "127.0.0.1")
        self.port = try environment.port("PORT", default: 5000)
        self.redis = try RedisConfiguration(environment: environment)
        self.audience = TokenAudience(
            issuer: environment.string("JWT_ISSUER", default: "messenger-auth"),
            audience: environment.string("JWT_AUDIENCE", default: "messenger"))
        self.trustProxy = try environment.choice("TRUST_PROXY", default: "false", among: ["true", "false"]) == "true"
    }
}
