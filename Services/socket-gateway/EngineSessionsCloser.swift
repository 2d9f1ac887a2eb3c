import ServiceLifecycle
import SocketIOServer

/// Closes every Engine.IO session when the gateway shuts down. WebSocket connections live in
/// their channels, outside the HTTP server's tasks, so the HTTP server alone would not end them;
/// a close lets each client reconnect to another replica at once.
struct EngineSessionsCloser: Service {
    let engine: EngineServer

    func run() async throws {
        try? await gracefulShutdown()
        await self.engine.closeAllSessions()
    }
}
