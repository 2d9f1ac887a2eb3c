import MessengerServiceKit
import Testing

@testable import SocketGateway

/// The gateway's settings as an operator writes them (docs/socketio.md, README "Configuration").
@Suite("Gateway settings")
struct GatewaySettingsTests {
    /// The required variables, and `extra`.
    func settings(_ extra: [String: String]) throws -> GatewaySettings {
        let required = ["RABBITMQ_URI": "amqp://guest:guest@127.0.0.1:5672/%2f", "REDIS_HOST": "127.0.0.1"]
        return try GatewaySettings(environment: ServiceEnvironment(required.merging(extra) { $1 }))
    }

    @Test("CORS_ORIGIN unset is `*`, set is that origin, set but empty is no CORS at all")
    func corsOrigin() throws {
        #expect(try self.settings([:]).engine.corsOrigin == "*")
        #expect(try self.settings(["CORS_ORIGIN": "https://chat.example"]).engine.corsOrigin == "https://chat.example")
        #expect(try self.settings(["CORS_ORIGIN": ""]).engine.corsOrigin == nil)
    }
}
