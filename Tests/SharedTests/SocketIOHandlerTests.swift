import Foundation
import Logging
import NIOPosix
import SocketIOProtocol
import Synchronization
import TestSupport
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

    /// Events waiting to run are bounded in bytes, not only in number: a polling client's POST
    /// is answered only once they are down again (its back-pressure), and one that sends past
    /// the bound is closed. Until the forty-second session 16,384 events of a megabyte each
    /// could wait on one polling session, every POST answered at once.
    @Test("events waiting on a polling session are bounded in bytes: the POST's answer waits, and a flood is closed")
    func pendingBytesAreBounded() async throws {
        let gate = Gate()
        let session = try await Self.connectedPollingSession(slowEventsWaitAt: gate)

        // One event runs (and waits at the gate); two wait, 1.2 MB: past the pause mark (a
        // string is one value: its text is nearly all it holds).
        let event = EngineIOPacket.message(#"2["slow","\#(String(repeating: "x", count: 600_000))"]"#)
        try await Self.expectPostHeldUntilOpened(
            session, gate, receiving: [event, event, event], "the POST was answered while 1.2 MB of events waited")
        #expect(!(await session.isClosed))

        // Past the bound (16 MiB waiting), the connection is closed.
        gate.close()
        await session.receive(payload: Array(repeating: event, count: 30))
        #expect(await session.isClosed)
        // Closed as a lost transport: no close packet, which python-socketio takes for a goodbye
        // (until the forty-sixth session it got one, and a burst in one POST kept it away).
        await #expect(throws: EngineIOProtocolError.sessionClosed) { try await session.poll() }
        gate.open()
    }
}

extension SocketIOHandlerTests {
    /// Receives `payload` as a POST's and expects the POST's answer held until `gate` opens.
    static func expectPostHeldUntilOpened(
        _ session: EngineSession, _ gate: Gate, receiving payload: [EngineIOPacket], _ problem: Comment
    ) async throws {
        await session.receive(payload: payload)
        let answered = Atomic(false)
        let post = Task {
            await session.holdPostWhilePaused()
            answered.store(true, ordering: .relaxed)
        }
        try await Task.sleep(for: .milliseconds(300))
        let answeredEarly = answered.load(ordering: .relaxed)
        #expect(!answeredEarly, problem)
        gate.open()
        await post.value
    }

    /// A polling session whose socket is connected, whose `slow` event waits at `gate`, and whose
    /// POSTs are held up to 30 s while reading is paused.
    static func connectedPollingSession(slowEventsWaitAt gate: Gate) async throws -> EngineSession {
        let core = Self.core()
        core.handlers.withLock { $0["slow"] = { _, _ in await gate.wait() } }
        var configuration = EngineConfiguration()
        configuration.longestPostHold = .seconds(30)
        let session = await Self.pollingSession(core, configuration: configuration)
        await session.receive(payload: [.message("0")])
        #expect(try await session.poll().contains { $0.text.hasPrefix("40{") })
        return session
    }

    /// A server core on `/` that lets every client in as user `u`.
    static func core() -> SocketIOCore {
        SocketIOCore(
            namespaces: ["/"], authenticate: { _, _ in .success(SocketPrincipal(userID: "u")) },
            unknownEvent: { _, _ in [] }, logger: Logger(label: "test"))
    }

    /// A started long-polling session whose Socket.IO layer is `core`'s.
    static func pollingSession(_ core: SocketIOCore, configuration: EngineConfiguration = .init()) async -> EngineSession {
        let session = EngineSession(
            id: "e", eventLoop: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration,
            logger: Logger(label: "test"))
        let connection = SocketIOConnection(
            core: core, session: session, handshake: EngineHandshake(headers: [:], query: [:], remoteAddress: nil))
        await session.start(delegate: connection, webSocket: nil)
        return session
    }
}

extension SocketIOHandlerTests {
    /// A packet's values count in what it holds: a megabyte of `[1,1,…]` takes about 20 MB
    /// parsed, so a few of them pause reading, where their text alone would not.
    @Test("a packet's parsed values count in what waits: small values pause reading sooner than their text would")
    func valuesCountInPendingBytes() async throws {
        let gate = Gate()
        let session = try await Self.connectedPollingSession(slowEventsWaitAt: gate)
        // 20,000 numbers: 40 KB of text, about 800 KB parsed. One runs, two wait.
        let numbers = Array(repeating: "1", count: 20_000).joined(separator: ",")
        let event = EngineIOPacket.message(#"2["slow",\#(numbers)]"#)
        try await Self.expectPostHeldUntilOpened(
            session, gate, receiving: [event, event, event], "80 KB of text that parses to 1.6 MB did not pause reading")
        // Past the values a packet may carry, the packet is refused and the connection closed.
        let tooMany = Array(repeating: "1", count: 100_000).joined(separator: ",")
        await session.receive(payload: [.message(#"2["slow",\#(tooMany)]"#)])
        #expect(await session.isClosed)
    }
}

/// Holds event handlers until it is opened.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async -> [JSONValue] {
        await withCheckedContinuation { continuation in
            let go = self.state.withLock { state -> Bool in
                if state.open { return true }
                state.waiting.append(continuation)
                return false
            }
            if go { continuation.resume() }
        }
        return []
    }

    func open() {
        let waiting = self.state.withLock { state in
            state.open = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func close() {
        self.state.withLock { $0.open = false }
    }
}

extension SocketIOHandlerTests {
    /// The CONNECT reply can be what takes a polling session past its backlog's hard bound: the
    /// session closes on the spot. Until the forty-fourth session the socket's disconnect handler
    /// ran then, and its connect handler after it, for a socket already gone: the gateway kept
    /// that socket's event stream (and replayed into it) for good (a review).
    @Test("a CONNECT whose reply closes the session runs neither the connect nor the disconnect handler")
    func connectReplyThatClosesTheSession() async throws {
        let core = Self.core()
        let calls = Mutex<[String]>([])
        core.connectHandler.withLock { $0 = HandlerBox { _, _ in calls.withLock { $0.append("connect") } } }
        core.disconnectHandler.withLock { $0 = HandlerBox { _ in calls.withLock { $0.append("disconnect") } } }
        let configuration = EngineConfiguration()
        let session = await Self.pollingSession(core, configuration: configuration)
        // 20 bytes under the hard bound wait for a GET that does not come.
        let hardLimit = EngineBacklog(limit: configuration.maximumBacklog).hardLimit
        await session.send([EngineIOPacket.message(String(repeating: "x", count: hardLimit - 21 - EngineSession.packetOverhead))])
        #expect(!(await session.isClosed))
        await session.receive(payload: [.message("0")])
        let closed = await TestHelpers.eventually(timeout: .seconds(5)) { await session.isClosed }
        #expect(closed)
        try await Task.sleep(for: .milliseconds(200))
        // Neither handler runs: the socket was never in.
        let recorded = calls.withLock { $0 }
        #expect(recorded.isEmpty, "\(recorded)")
    }
}

extension SocketIOHandlerTests {
    /// What a connection closed for flooding had queued does not run. Until the forty-fourth
    /// session a closed connection's queue still ran, at the user's command rate, and a client
    /// that flooded and reconnected again and again kept all of it in memory (a review).
    @Test("a connection closed for flooding runs none of the events it had queued")
    func floodedQueueDropped() async throws {
        let gate = Gate()
        let ran = Mutex(0)
        let core = Self.core()
        core.handlers.withLock {
            $0["slow"] = { _, _ in
                ran.withLock { $0 += 1 }
                return await gate.wait()
            }
        }
        let session = await Self.pollingSession(core)
        await session.receive(payload: [.message("0")])
        #expect(try await session.poll().contains { $0.text.hasPrefix("40{") })
        // At most one runs (and waits at the gate); the rest queue, past the 16 MiB bound.
        let event = EngineIOPacket.message(#"2["slow","\#(String(repeating: "x", count: 600_000))"]"#)
        await session.receive(payload: Array(repeating: event, count: 30))
        #expect(await session.isClosed)
        // Closed as a lost transport: no close packet, which python-socketio takes for a goodbye
        // (until the forty-sixth session it got one, and a burst in one POST kept it away).
        await #expect(throws: EngineIOProtocolError.sessionClosed) { try await session.poll() }
        gate.open()
        try await Task.sleep(for: .milliseconds(300))
        // The one that started before the flood may have run; none of those queued.
        #expect(ran.withLock { $0 } <= 1, "the flooded connection's queue ran")
    }
}

extension SocketIOHandlerTests {
    /// A connection's queue of commands is bounded (16 MiB), and a closed connection's queue still
    /// runs; a user's queues over all their connections share 32 MiB. Until the forty-fourth
    /// session nothing bounded them together: a client that filled a queue, disconnected and
    /// did it again kept every one of them in memory (a review).
    @Test("a user's queued commands over all their connections are bounded: the connection past the share is closed")
    func queuedCommandsSharedPerUser() async throws {
        let gate = Gate()
        let core = Self.core()
        core.handlers.withLock { $0["slow"] = { _, _ in await gate.wait() } }
        var configuration = EngineConfiguration()
        configuration.longestPostHold = .milliseconds(1)
        // 25 events of 600 KB: 15 MB, under one connection's bound.
        let event = EngineIOPacket.message(#"2["slow","\#(String(repeating: "x", count: 600_000))"]"#)
        var sessions: [EngineSession] = []
        for _ in 0..<3 {
            let session = await Self.pollingSession(core, configuration: configuration)
            await session.receive(payload: [.message("0")])
            #expect(try await session.poll().contains { $0.text.hasPrefix("40{") })
            await session.receive(payload: Array(repeating: event, count: 25))
            sessions.append(session)
        }
        #expect(!(await sessions[0].isClosed))
        #expect(!(await sessions[1].isClosed))
        #expect(await sessions[2].isClosed, "a third connection's 15 MB queue fit in the user's share")
        #expect(core.queuedCommands.inUse(by: "u") <= HeldBytesBudget.queuedCommandUserShare)
        gate.open()
        for session in sessions { await session.close(reason: "test over", notifyClient: false) }
    }
}

extension SocketIOHandlerTests {
    /// More attachments than the server takes is a limit of this server, not a breach of the
    /// protocol (which sets no count): until the fifty-second session it closed with the close
    /// packet, and python-socketio, taking that for a goodbye, stayed away (a review).
    @Test("a packet with more attachments than the server takes closes as a lost transport; a bad count with the close packet")
    func tooManyAttachmentsIsALimit() async throws {
        let limit = SocketIODecoder().maximumAttachments
        for (count, isLimit) in [(limit + 1, true), (0, false)] {
            let session = await Self.pollingSession(Self.core())
            await session.receive(payload: [.message("0")])
            #expect(try await session.poll().contains { $0.text.hasPrefix("40{") })
            await session.receive(payload: [.message(#"5\#(count)-["add_attachments",{"files":[]}]"#)])
            #expect(await session.isClosed)
            if isLimit {
                await #expect(throws: EngineIOProtocolError.sessionClosed) { try await session.poll() }
            } else {
                #expect(try await session.poll().contains { $0.text == "1" })
            }
        }
        var decoder = SocketIODecoder(maximumAttachments: 2)
        #expect(throws: SocketIOProtocolError("more than 2 attachments", isLimit: true)) {
            try decoder.receive(text: #"53-["x",{}]"#)
        }
    }
}
