import Logging
import NIOPosix
import Testing

@testable import SocketIOServer

/// ``EngineServer/closeAllSessions()`` at shutdown: clients told to go that reconnect at once
/// must not open sessions on the stopping server (a WebSocket would hold its shutdown up).
@Suite("An engine that is closing")
struct EngineClosingTests {
    @Test("after closeAllSessions no session opens: no WebSocket upgrade is accepted, no session is made")
    func noSessionAfterClosing() async throws {
        let engine = EngineServer(configuration: .init(), logger: Logger(label: "test")) { _, _ in
            KeepAliveUpgradeHandlerTests.NoLayerAbove()
        }
        let uri = "/socket.io/?EIO=4&transport=websocket"
        #expect(engine.acceptsWebSocket(uri: uri))
        await engine.closeAllSessions()
        #expect(!engine.acceptsWebSocket(uri: uri))
        #expect(engine.makeSession(on: MultiThreadedEventLoopGroup.singleton.next()) == nil)
        #expect(engine.sessionCount == 0)
    }
}
