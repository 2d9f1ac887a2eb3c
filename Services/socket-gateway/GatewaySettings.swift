import MessengerRedis
import MessengerServiceKit

/// The gateway's settings: the shared ones plus its public listener and Redis.
struct GatewaySettings: Sendable {
    var service: ServiceSettings
    /// The public HTTP + Socket.IO listener (`HOST`, `PORT`).
    var host: String
    var port: Int
    var redis: RedisConfiguration

    init(environment: ServiceEnvironment) throws {
        self.service = try ServiceSettings(
            name: "socket-gateway", adminPortVariable: "GATEWAY_ADMIN_PORT", defaultAdminPort: 9100, environment: environment)
        self.host = environment.string("HOST", default: "127.0.0.1")
        self.port = try environment.port("PORT", default: 5000)
        self.redis = try RedisConfiguration(environment: environment)
    }
}
