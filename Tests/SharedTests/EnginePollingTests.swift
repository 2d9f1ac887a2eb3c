import Logging
import NIOPosix
import SocketIOProtocol
import Testing

@testable import SocketIOServer

@Suite("Engine.IO long-polling", .timeLimit(.minutes(1)))
struct EnginePollingTests {
    /// A polling client takes 16 packets a GET. Until the forty-fourth session the heartbeat's
    /// ping waited behind everything queued before it, and a client catching up answered it
    /// too late and was closed as dead (a review).
    @Test("the ping goes before what waits for the next GETs: a client catching up answers it in time")
    func pingGoesFirst() async throws {
        var configuration = EngineConfiguration()
        configuration.pingInterval = .seconds(1)
        configuration.pingTimeout = .seconds(1)
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
            logger: Logger(label: "test"))
        await session.start(delegate: KeepAliveUpgradeHandlerTests.NoLayerAbove(), webSocket: nil)
        // 60 GETs' worth of events, taken one GET every 100 ms: 6 s to drain.
        await session.send((0..<960).map { EngineIOPacket.message("event \($0)") })
        var pings = 0
        let started = ContinuousClock.now
        while ContinuousClock.now - started < .seconds(4) {
            let packets = try await session.poll()
            if packets.contains(where: { if case .ping = $0 { true } else { false } }) {
                pings += 1
                await session.receive(payload: [.pong("")])
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(pings >= 2)
        #expect(!(await session.isClosed), "a client that answered every ping it got was closed")
        await session.close(reason: "test over", notifyClient: false)
    }
}
