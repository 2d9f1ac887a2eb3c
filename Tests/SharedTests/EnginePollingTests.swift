import Logging
import NIOPosix
import SocketIOProtocol
import Testing

@testable import SocketIOServer

@Suite("Engine.IO long-polling", .timeLimit(.minutes(1)))
struct EnginePollingTests {
    /// A polling client takes 16 packets a GET. Until the forty-fourth session the heartbeat's
    /// ping waited behind everything queued before it, and a client catching up answered it
    /// too late and was closed as dead (a review). The pong's timeout here is long, so that a
    /// busy machine cannot close the session: the test looks at where the ping is.
    @Test("the ping goes before what waits for the next GETs")
    func pingGoesFirst() async throws {
        var configuration = EngineConfiguration()
        configuration.pingInterval = .milliseconds(200)
        configuration.pingTimeout = .seconds(30)
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
            logger: Logger(label: "test"))
        await session.start(delegate: KeepAliveUpgradeHandlerTests.NoLayerAbove(), webSocket: nil)
        // 60 GETs' worth of events wait; the heartbeat's ping comes after them.
        await session.send((0..<960).map { EngineIOPacket.message("event \($0)") })
        // Three intervals and more: a timer fires late on a busy machine, never early.
        try await Task.sleep(for: .seconds(2))
        let first = try await session.poll()
        #expect(first.first.map { if case .ping = $0 { true } else { false } } == true, "the first GET: \(first.prefix(2))")
        await session.close(reason: "test over", notifyClient: false)
    }

    /// A GET checked in just before its session closed reaches `poll()` after the close. Until
    /// the forty-sixth session it got the close packet whatever the close, and a python-socketio
    /// client whose POST past `maxPayload` raced its GET took it for a goodbye and never came
    /// back (one CI run in about 26).
    @Test("a GET that arrives as its session closes gets the close packet only from a close that sends one")
    func pollAfterClose() async throws {
        for notifyClient in [false, true] {
            let session = EngineSession(
                id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: EngineConfiguration(),
                logger: Logger(label: "test"))
            await session.start(delegate: KeepAliveUpgradeHandlerTests.NoLayerAbove(), webSocket: nil)
            await session.close(reason: "test", notifyClient: notifyClient)
            if notifyClient {
                // The next GET gets the close packet (``EngineSession/finalPoll``), and so does
                // one more that raced it.
                #expect(try await session.poll() == [.close])
                #expect(try await session.poll() == [.close])
            } else {
                await #expect(throws: EngineIOProtocolError.sessionClosed) { try await session.poll() }
            }
        }
    }

    static func openSession() async -> EngineSession {
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: EngineConfiguration(),
            logger: Logger(label: "test"))
        await session.start(delegate: KeepAliveUpgradeHandlerTests.NoLayerAbove(), webSocket: nil)
        return session
    }

    /// Until the forty-sixth session a close that tells the client, with no GET waiting, dropped
    /// the close packet with what was queued before it: the next GET got 400, which stock
    /// clients take for a lost transport, and they reconnected instead of leaving.
    @Test("a close that tells the client, with no GET waiting, leaves its packets to the next GET")
    func notifiedCloseWaitsForTheNextGet() async throws {
        let session = await Self.openSession()
        await session.send([EngineIOPacket.message("41")])
        await session.close(reason: "test", notifyClient: true)
        #expect(await session.acceptsPoll())
        #expect(try await session.poll() == [.message("41"), .close])
    }

    /// Engine.IO 4 clients send no pings; the reference server closes a session that does
    /// ("invalid heartbeat direction"). Until the forty-sixth session each was answered, and a
    /// POST of a million one-byte pings queued a million pongs.
    @Test("a client's ping closes its session, as a lost transport")
    func clientPingCloses() async throws {
        let session = await Self.openSession()
        await session.receive(payload: [.ping(""), .ping(""), .ping("")])
        #expect(await session.isClosed)
        await #expect(throws: EngineIOProtocolError.sessionClosed) { try await session.poll() }
    }

    @Test("a queued packet weighs its bytes and a fixed overhead against the backlog bound")
    func packetCost() {
        #expect(EngineSession.cost(of: [.pong(""), .message("hello")]) == 1 + 6 + 2 * EngineSession.packetOverhead)
    }
}
