import ServiceLifecycle
import SocketIOServer

/// Closes every Engine.IO session when the gateway shuts down. WebSocket connections live in
/// their channels, outside the HTTP server's tasks, so the HTTP server alone would not end them;
/// a close lets each client reconnect to another replica at once. Then it waits, up to
/// ``commandsLimit``, for the commands the clients had sent to run: they still run after their
/// connection closed, and need the RPC client, which stops after this.
struct EngineSessionsCloser: Service {
    let server: SocketIOServer

    /// Within the service group's 20 s (`SHUTDOWN_TIMEOUT_SECONDS`): what is still queued by then
    /// (a client far over the command rate) is dropped.
    static let commandsLimit: Duration = .seconds(10)

    func run() async throws {
        try? await gracefulShutdown()
        await self.server.engine.closeAllSessions()
        await self.server.commandsDone(waitingAtMost: Self.commandsLimit)
    }
}
