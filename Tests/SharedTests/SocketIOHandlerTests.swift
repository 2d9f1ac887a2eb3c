import Foundation
import Logging
import NIOPosix
import SocketIOProtocol
import Synchronization
import Testing

@testable import SocketIOServer

@Suite("Socket.IO server handlers", .timeLimit(.minutes(1)))
struct SocketIOHandlerTests {
    /// A function value read out of a `Mutex` comes back wrapped in one more reabstraction thunk
    /// per read; a server that stored its handlers that way called them through one more frame
    /// per connection it had seen. The depth of the stack a handler runs on must not grow.
    @Test("the connect and disconnect handlers run at the same depth on the 1,000th call as on the first")
    func handlersAreNotWrappedOnEveryRead() {
        let core = SocketIOCore(
            namespaces: ["/"], authenticate: { _, _ in .failure(.unauthorized) }, unknownEvent: { _, _ in [] },
            logger: Logger(label: "test"))
        let depths = Mutex<[Int]>([])
        core.connectHandler.withLock {
            $0 = HandlerBox { _, _ in depths.withLock { $0.append(Thread.callStackSymbols.count) } }
        }
        core.disconnectHandler.withLock {
            $0 = HandlerBox { _ in depths.withLock { $0.append(Thread.callStackSymbols.count) } }
        }
        let socket = SocketIOSocket(
            id: "s", principal: SocketPrincipal(userID: "u"), namespace: "/",
            session: EngineSession(
                id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: EngineConfiguration(),
                logger: Logger(label: "test")), connection: nil)
        for _ in 0..<1_000 {
            core.onConnect?(socket, nil)
            core.onDisconnect?(socket)
        }
        let recorded = depths.withLock { $0 }
        #expect(recorded.count == 2_000)
        #expect(recorded[1_998] == recorded[0])
        #expect(recorded[1_999] == recorded[1])
    }

    /// A replay paces itself on the client with `waitForRoom`; a client that stops reading
    /// must not hold it (and the gateway's replay place) for ever.
    @Test("a wait for room that lasts the longest wait closes the session, which ends the wait")
    func waitForRoomEnds() async {
        var configuration = EngineConfiguration()
        configuration.longestWaitForRoom = .milliseconds(200)
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
            logger: Logger(label: "test"))
        // A long-polling session with more waiting than a quarter of the bound, and no GET.
        await session.send([.text(String(repeating: "x", count: 1_200_000)), .text(String(repeating: "y", count: 200_000))])
        await session.waitForRoom()
        #expect(await session.isClosed)
    }
}
