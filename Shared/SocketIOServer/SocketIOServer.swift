import Foundation
import Logging
import NIOCore
import SocketIOProtocol
import Synchronization

/// A Socket.IO v5 server on top of ``EngineServer``: authentication at CONNECT, rooms, and an
/// event router whose handlers answer through the client's ack. Namespaces other than the
/// configured ones (`/` by default) are refused with CONNECT_ERROR.
public final class SocketIOServer: Sendable {
    /// Who a CONNECT's `auth` payload and the handshake authenticate, or why the CONNECT is
    /// refused (its CONNECT_ERROR's message).
    public typealias Authenticator =
        @Sendable (_ auth: JSONValue?, _ handshake: EngineHandshake) async -> Result<SocketPrincipal, ConnectRefusal>
    /// Handles one event; the returned values are the ack's arguments.
    public typealias EventHandler = @Sendable (_ socket: SocketIOSocket, _ arguments: [JSONValue]) async -> [JSONValue]
    /// Runs once a socket is connected (joined its rooms), before its first event is handled.
    /// Synchronous: start a task for anything that waits.
    public typealias ConnectHandler = @Sendable (_ socket: SocketIOSocket, _ auth: JSONValue?) -> Void
    /// Runs once a socket has left (DISCONNECT, or its connection closed), after it left its rooms.
    public typealias DisconnectHandler = @Sendable (_ socket: SocketIOSocket) -> Void

    /// The Engine.IO transport layer (add its routes to the HTTP routers).
    public let engine: EngineServer
    private let core: SocketIOCore

    /// `isReady`: whether new connections are taken (``EngineServer/init(configuration:logger:eventLoopGroup:isReady:makeDelegate:)``).
    public init(
        configuration: EngineConfiguration, logger: Logger, namespaces: Set<String> = ["/"],
        isReady: @escaping @Sendable () -> Bool = { true },
        authenticate: @escaping Authenticator, unknownEvent: @escaping EventHandler
    ) {
        let core = SocketIOCore(namespaces: namespaces, authenticate: authenticate, unknownEvent: unknownEvent, logger: logger)
        self.core = core
        self.engine = EngineServer(configuration: configuration, logger: logger, isReady: isReady) { session, handshake in
            SocketIOConnection(core: core, session: session, handshake: handshake)
        }
    }

    public var rooms: RoomRegistry { self.core.rooms }

    /// Returns once no command that clients sent is queued or running, or after `limit`. For a
    /// graceful stop, after the sessions closed: a closed connection's queued commands still
    /// run (commands sent without an ack are run all the same), and they need the service's
    /// RPC client, which stops after this. Until the forty-fourth session the gateway stopped
    /// at once and dropped them (a review).
    public func commandsDone(waitingAtMost limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while self.core.queuedCommands.inUse > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Handles `event` from clients.
    public func on(_ event: String, _ handler: @escaping EventHandler) {
        self.core.handlers.withLock { $0[event] = handler }
    }

    public func onConnect(_ handler: @escaping ConnectHandler) {
        self.core.connectHandler.withLock { $0 = HandlerBox(handler) }
    }

    public func onDisconnect(_ handler: @escaping DisconnectHandler) {
        self.core.disconnectHandler.withLock { $0 = HandlerBox(handler) }
    }

    /// Sends an event to every local socket of `namespace` in `rooms` (all its sockets when
    /// empty), except those in `except`.
    public func emit(
        _ event: String, _ arguments: [JSONValue], rooms: [String], except: [String] = [], namespace: String = "/"
    ) async {
        let messages = SocketIOSocket.messages(for: .event(event, arguments, namespace: namespace))
        for socket in self.core.rooms.sockets(in: rooms, except: except) where socket.namespace == namespace {
            await socket.session.send(messages)
        }
    }
}

/// Why a CONNECT was refused: its CONNECT_ERROR's `{message, data?}` (stock clients hand both
/// to their `connect_error` handler).
public struct ConnectRefusal: Error, Hashable, Sendable {
    public var message: String
    public var data: JSONValue?

    public init(message: String, data: JSONValue? = nil) {
        self.message = message
        self.data = data
    }

    /// A missing, invalid, expired or revoked credential (protocol.md, "Connecting").
    public static let unauthorized = ConnectRefusal(message: "unauthorized")
    /// The server cannot check credentials yet (it is starting); the client may retry.
    public static let unavailable = ConnectRefusal(message: "unavailable")

    /// The CONNECT_ERROR packet's data.
    var payload: JSONValue {
        guard let data = self.data else { return .object(["message": .string(self.message)]) }
        return .object(["message": .string(self.message), "data": data])
    }
}

/// Who a socket authenticated as: the user, and the login session its credential belongs to
/// (by which the server can disconnect it when that session ends).
public struct SocketPrincipal: Sendable, Equatable {
    public var userID: String
    public var loginSession: UUID?

    public init(userID: String, loginSession: UUID? = nil) {
        self.userID = userID
        self.loginSession = loginSession
    }
}

/// What every connection of a server shares: authentication, handlers, rooms.
final class SocketIOCore: Sendable {
    let rooms = RoomRegistry()
    let namespaces: Set<String>
    let authenticate: SocketIOServer.Authenticator
    let unknownEvent: SocketIOServer.EventHandler
    let logger: Logger
    let handlers = Mutex<[String: SocketIOServer.EventHandler]>([:])
    // Each handler sits in a box of its own: a function value read straight out of a `Mutex`
    // (`withLock { $0 }`) comes back wrapped in one more reabstraction thunk on every read, and
    // the wrappers pile up (a server that had seen 40,000 connections spent 98 % of its CPU
    // walking them on the next connect). A class reference is read as it is.
    let connectHandler = Mutex<HandlerBox<SocketIOServer.ConnectHandler>?>(nil)
    let disconnectHandler = Mutex<HandlerBox<SocketIOServer.DisconnectHandler>?>(nil)
    /// Bytes of binary attachments held over every connection, until their packets' commands
    /// have run (``HeldBytesBudget``).
    let attachmentBudget = HeldBytesBudget(
        limit: HeldBytesBudget.attachmentLimit, userShare: HeldBytesBudget.attachmentUserShare,
        metrics: "socketio_attachment")
    /// Bytes of commands queued or running, each user's over all their connections (open or
    /// closed) within a share (``HeldBytesBudget``).
    let queuedCommands = HeldBytesBudget(
        limit: .max, userShare: HeldBytesBudget.queuedCommandUserShare, metrics: "socketio_queued_command")

    init(
        namespaces: Set<String>, authenticate: @escaping SocketIOServer.Authenticator,
        unknownEvent: @escaping SocketIOServer.EventHandler, logger: Logger
    ) {
        self.namespaces = namespaces
        self.authenticate = authenticate
        self.unknownEvent = unknownEvent
        self.logger = logger
    }

    func handler(for event: String) -> SocketIOServer.EventHandler {
        self.handlers.withLock { $0[event] } ?? self.unknownEvent
    }

    var onConnect: SocketIOServer.ConnectHandler? { self.connectHandler.withLock { $0 }?.handler }
    var onDisconnect: SocketIOServer.DisconnectHandler? { self.disconnectHandler.withLock { $0 }?.handler }
}

/// A handler, held by reference (see ``SocketIOCore/connectHandler``).
final class HandlerBox<Handler: Sendable>: Sendable {
    let handler: Handler

    init(_ handler: Handler) { self.handler = handler }
}

/// The Socket.IO side of one Engine.IO session: decodes packets, authenticates the CONNECT, and
/// runs the socket's events one after the other, in arrival order.
///
/// It runs on its session's executor (the session's event loop), so the session hands it
/// packets synchronously. While no event is pending it holds no task: a task runs the queue
/// while there is something in it.
actor SocketIOConnection: EngineSessionDelegate {
    /// Events waiting to run past which the connection stops reading (its client's writes wait
    /// in TCP), and below which it reads again. A client that sends faster than its commands
    /// are answered is slowed down, not dropped.
    static let pauseReadingAt = 256
    static let resumeReadingAt = 64
    /// The same marks for the bytes those events take (``bytes(text:values:)``; binary
    /// attachments are counted in ``SocketIOCore/attachmentBudget``): a megabyte, about one
    /// `maxPayload`, and a quarter of it. Until the forty-second session only events were
    /// counted, and 256 events of a megabyte each could wait on one WebSocket (16,384 on a
    /// polling session).
    static let pauseReadingAtBytes = 1 << 20
    static let resumeReadingAtBytes = 1 << 18
    /// The bytes that may wait on one connection even so: past the pause, a WebSocket reads at
    /// most the rest of one read and one message of `maxPayload`, and a polling client sends its
    /// next POST only once its last is answered (held while reading is paused, for
    /// ``EngineConfiguration/longestPostHold`` at most).
    static let maximumPendingBytes = 16 << 20
    /// The most JSON values one packet may carry (``SocketIODecoder/maximumValues``): a
    /// `maxPayload` of ids is some 25,000 (a `delete_message` of 16,000 ids gets its
    /// `invalid_argument`), and this keeps a packet's parsed form within about 4 MB.
    static let maximumValuesPerPacket = 100_000
    /// What a parsed JSON value takes beyond its text: the 8-byte slot in its array or
    /// dictionary and the box of an indirect enum case. A megabyte of `[1,1,…]` parses to about
    /// 20 MB.
    static let bytesPerValue = 40

    /// What an event waiting to run holds in memory, about: its text and its parsed values.
    static func bytes(text: Int, values: Int) -> Int {
        text + values * Self.bytesPerValue
    }
    /// Events that may wait on one connection even so; past this the client is flooding and its
    /// connection is closed. Long-polling cannot be paused (one POST may carry many), and a
    /// WebSocket pauses only between reads: one read of 64 KiB can hold about 6,000 of the
    /// smallest frames, all queued before the pause takes effect. So the bound is well above
    /// `pauseReadingAt` plus one read's worth (at 4,096, a burst of 10,000 tiny commands in one
    /// write was closed as a flood).
    static let maximumPendingEvents = 16_384
    /// How long a connection whose last socket the server disconnected may stay open.
    static let closeAfterServerDisconnect = TimeAmount.seconds(5)

    /// An event waiting to run, and what its binary attachments hold of
    /// ``SocketIOCore/attachmentBudget`` until it has run.
    private typealias PendingEvent = (
        socket: SocketIOSocket, name: String, arguments: [JSONValue], ackID: Int?, attachments: AttachmentHold?,
        bytes: Int
    )

    private let server: SocketIOCore
    private let session: EngineSession
    private let handshake: EngineHandshake
    private var decoder = SocketIODecoder(maximumValues: SocketIOConnection.maximumValuesPerPacket)
    /// The connected sockets, by namespace.
    private var sockets: [String: SocketIOSocket] = [:]
    private var connecting: Set<String> = []
    /// Packets that arrived while a CONNECT was being authenticated (with their text's size),
    /// handled after it.
    private var held: [(packet: SocketIOPacket, bytes: Int)] = []
    private var pending: [PendingEvent] = []
    /// The text bytes of `held` and `pending`.
    private var pendingBytes = 0
    /// What the binary packet whose attachments are still to come holds (``bytes(text:values:)``).
    private var binaryHeaderBytes = 0
    /// Reading is paused (``pauseReadingAt``, ``pauseReadingAtBytes``).
    private var isReadingPaused = false
    private var running = false
    /// A namespace was connected once: later packets for namespaces that left are not a
    /// protocol breach.
    private var hasConnected = false
    private var connectTimeout: Scheduled<Void>?
    /// Who this connection is in ``SocketIOCore/attachmentBudget`` while a binary packet's
    /// attachments are coming in.
    private let holderID: UInt64
    /// The binary packet under way holds some of ``SocketIOCore/attachmentBudget``.
    private var holdsAttachments = false
    /// Closes the connection when a binary packet's attachments do not all come in time.
    private var attachmentTimer: (timer: Scheduled<Void>, deadline: NIODeadline)?
    /// When the binary packet under way must have all its attachments (``AttachmentDeadline``).
    private var attachmentDeadline: AttachmentDeadline?

    nonisolated var unownedExecutor: UnownedSerialExecutor { self.session.unownedExecutor }

    init(core: SocketIOCore, session: EngineSession, handshake: EngineHandshake) {
        self.server = core
        self.session = session
        self.handshake = handshake
        self.holderID = core.attachmentBudget.makeHolderID()
        self.connectTimeout = session.eventLoop.scheduleTask(in: TimeAmount(session.configuration.connectTimeout)) {
            [weak session] in
            session?.assumeIsolated { $0.close(reason: "no CONNECT in time") }
        }
    }

    func engineSession(_ session: isolated EngineSession, didReceive message: EngineMessage) {
        self.assumeIsolated { $0.receive(message) }
    }

    func engineSessionDidClose(_ session: isolated EngineSession, reason: String) {
        self.assumeIsolated { $0.closed() }
    }

    private func receive(_ message: EngineMessage) {
        do {
            let packet: SocketIOPacket?
            var packetBytes = 0
            switch message {
            case .text(let text):
                packet = try self.decoder.receive(text: text)
                packetBytes = Self.bytes(text: text.utf8.count, values: self.decoder.lastPacketValues)
                if packet == nil { self.binaryHeaderBytes = packetBytes }
            case .binary(let bytes):
                if self.decoder.isAwaitingAttachments {
                    guard self.hold(attachment: bytes.count) else { return }
                    self.attachmentDeadline?.received(bytes.count)
                }
                packet = try self.decoder.receive(binary: bytes)
                packetBytes = self.binaryHeaderBytes
            }
            // A packet complete with attachments keeps them counted until its event has run.
            var held: AttachmentHold?
            if packet != nil, self.holdsAttachments {
                self.holdsAttachments = false
                switch self.server.attachmentBudget.complete(self.holderID) {
                case .held(let hold): held = hold
                case .evicted:
                    self.closeEvicted()
                    return
                }
            }
            self.watchAttachments()
            if let packet { self.handle(packet, bytes: packetBytes, attachments: held) }
        } catch {
            self.watchAttachments()
            self.server.logger.info(
                "closing a connection after a bad packet", metadata: ["eio.sid": "\(self.session.id)", "error": "\(error)"])
            // A packet past a limit of this server (not the protocol's) closes without the close
            // packet, as the other limits do, so that the client reconnects: until the
            // fifty-second session 33 attachments closed it with the packet, and python-socketio
            // stayed away (a review).
            let isLimit = error.isLimit
            self.closeSession(reason: isLimit ? "packet past a limit" : "bad packet", notifyClient: !isLimit)
        }
    }

    /// Counts an attachment of the binary packet under way in the budget, in the share of the
    /// user whose socket it is for; false when the connection is closed instead. Attachments
    /// for a namespace with no socket connected are refused (the packet would be; and a client
    /// that has not authenticated holds nothing).
    private func hold(attachment bytes: Int) -> Bool {
        guard let namespace = self.decoder.awaitedNamespace, let socket = self.sockets[namespace] else {
            self.closeSession(reason: "binary attachments for a namespace not connected")
            return false
        }
        let budget = self.server.attachmentBudget
        let holder = UnfinishedHolder(id: self.holderID) { [weak self] in
            guard let self else { return }
            self.session.eventLoop.execute { self.assumeIsolated { $0.closeEvicted() } }
        }
        switch budget.reserve(bytes, for: socket.userID, holder: holder) {
        case .reserved:
            self.holdsAttachments = true
            return true
        case .evicted:
            self.closeEvicted()
            return false
        case .overUserShare:
            self.server.logger.info(
                "closing a connection: its user's attachments waiting for their commands fill the user's share",
                metadata: ["eio.sid": "\(self.session.id)", "share": "\(budget.userShare)"])
            self.closeSession(reason: "attachment share", notifyClient: false)
            return false
        case .overLimit:
            self.server.logger.warning(
                "closing a connection: the attachments waiting for their commands fill the budget",
                metadata: ["eio.sid": "\(self.session.id)", "budget": "\(budget.limit)"])
            self.closeSession(reason: "attachment budget", notifyClient: false)
            return false
        }
    }

    /// `bytes`: what the packet holds (``bytes(text:values:)``). `attachments`: what the packet's attachments
    /// hold of the budget, given back once its event has run, or at once when it is not an
    /// event that runs.
    private func handle(_ packet: SocketIOPacket, bytes: Int, attachments: AttachmentHold? = nil) {
        guard self.connecting.isEmpty else {
            // Held only while a CONNECT is checked (moments): its attachments are not counted.
            self.server.attachmentBudget.release(attachments)
            guard self.held.count < Self.maximumPendingEvents, self.admits(bytes) else {
                self.closeSession(reason: "too many packets before CONNECT", notifyClient: false)
                return
            }
            self.held.append((packet, bytes))
            self.pendingBytes += bytes
            self.pauseReadingIfFull()
            return
        }
        var queued = false
        defer { if !queued { self.server.attachmentBudget.release(attachments) } }
        // Socket.IO v5: "If the server does not receive a CONNECT packet first, then it MUST
        // close the connection immediately" (an EVENT before it was refused below already; a
        // DISCONNECT or an ACK was ignored).
        guard packet.kind == .connect || !self.sockets.isEmpty || self.hasConnected else {
            self.closeSession(reason: "packet before CONNECT")
            return
        }
        switch packet.kind {
        case .connect:
            self.connect(packet)
        case .event, .binaryEvent:
            guard let socket = self.sockets[packet.namespace], let (name, arguments) = packet.event else {
                self.closeSession(reason: "event before connect")
                return
            }
            queued = self.enqueue((socket, name, arguments, packet.ackID, attachments, bytes))
        case .disconnect:
            // The connection stays open (other namespaces may follow); clients close it.
            self.leave(packet.namespace)
        case .ack, .binaryAck, .connectError:
            break  // the server asks for no acks
        }
    }

    private func connect(_ packet: SocketIOPacket) {
        let namespace = packet.namespace
        guard self.server.namespaces.contains(namespace) else {
            self.send(
                SocketIOPacket(
                    kind: .connectError, namespace: namespace, data: .object(["message": .string("Invalid namespace")])))
            return
        }
        guard self.sockets[namespace] == nil, !self.connecting.contains(namespace) else { return }
        self.connecting.insert(namespace)
        Task {
            let principal = await self.server.authenticate(packet.data, self.handshake)
            self.finishConnect(packet, principal: principal)
        }
    }

    private func finishConnect(_ packet: SocketIOPacket, principal authenticated: Result<SocketPrincipal, ConnectRefusal>) {
        let namespace = packet.namespace
        self.connecting.remove(namespace)
        if self.connecting.isEmpty { self.connecting = [] }  // frees the set's storage
        defer { self.handleHeld() }
        let principal: SocketPrincipal
        switch authenticated {
        case .success(let who): principal = who
        case .failure(let refusal):
            self.send(
                SocketIOPacket(kind: .connectError, namespace: namespace, data: refusal.payload))
            return
        }
        guard !self.isSessionClosed else { return }
        self.connectTimeout?.cancel()
        self.connectTimeout = nil
        let socket = SocketIOSocket(
            id: RandomID.make(), principal: principal, namespace: namespace, session: self.session, connection: self)
        // The reply goes first: it can take a polling session past its backlog's bound, and the
        // session then closes on the spot. Until the forty-fourth session the socket was in by
        // then, its disconnect handler ran, and its connect handler after it, which registered
        // an event stream that no disconnect would remove (a review). Nothing runs in between:
        // the client's next packet, and any event for its user, come after this.
        self.send(SocketIOPacket(kind: .connect, namespace: namespace, data: .object(["sid": .string(socket.id)])))
        guard !self.isSessionClosed else { return }
        self.sockets[namespace] = socket
        self.hasConnected = true
        self.server.rooms.join(socket, "user:\(principal.userID)")
        self.server.onConnect?(socket, packet.data)
    }

    private func handleHeld() {
        let held = self.held
        self.held = []
        for (packet, bytes) in held {
            self.pendingBytes -= bytes
            self.handle(packet, bytes: bytes)
        }
        self.resumeReadingIfRoom()
    }

    /// Whether `bytes` more may wait on this connection.
    private func admits(_ bytes: Int) -> Bool {
        self.pendingBytes + bytes <= Self.maximumPendingBytes
    }

    /// Queues `event` to run; false when the connection floods and is closed instead.
    private func enqueue(_ event: PendingEvent) -> Bool {
        // Within the connection's bounds, and within its user's share of queued commands over
        // all their connections (a closed connection's queue still runs).
        guard self.pending.count < Self.maximumPendingEvents, self.admits(event.bytes),
            self.server.queuedCommands.reserve(event.bytes, for: event.socket.userID) == .reserved
        else {
            self.server.logger.info(
                "closing a connection that floods events",
                metadata: [
                    "eio.sid": "\(self.session.id)", "events": "\(self.pending.count)", "bytes": "\(self.pendingBytes)",
                    "user_bytes": "\(self.server.queuedCommands.inUse(by: event.socket.userID))",
                ])
            // As a lost transport: python-socketio puts everything it queued in one POST, and
            // a burst it sent so, or one of another connection of the user, must not make it
            // leave for good (it takes the close packet for a goodbye).
            self.closeSession(reason: "too many pending events", notifyClient: false)
            // What a flooding client queued does not run: kept, a closed connection's queue
            // still ran at the user's command rate, and a client that flooded and reconnected,
            // again and again, kept every one of them in memory (a review in the forty-fourth
            // session).
            for event in self.pending {
                self.server.attachmentBudget.release(event.attachments)
                self.server.queuedCommands.release(event.bytes, for: event.socket.userID)
                self.pendingBytes -= event.bytes
            }
            self.pending = []
            return false
        }
        self.pending.append(event)
        self.pendingBytes += event.bytes
        self.pauseReadingIfFull()
        guard !self.running else { return true }
        self.running = true
        Task { await self.runPending() }
        return true
    }

    /// Runs the queued events in arrival order. An event that arrived before its socket
    /// disconnected (a DISCONNECT packet, or the connection closing) still runs, as the contract
    /// says of a command sent without an ack: a client that emits and then disconnects at once
    /// lost those commands before. Only its ack is left out, with no socket to take it.
    private func runPending() async {
        while !self.pending.isEmpty {
            let event = self.pending.removeFirst()
            self.pendingBytes -= event.bytes
            self.resumeReadingIfRoom()
            let reply = await self.server.handler(for: event.name)(event.socket, event.arguments)
            // Held in the user's share until it has run: a graceful stop waits for it.
            self.server.queuedCommands.release(event.bytes, for: event.socket.userID)
            self.server.attachmentBudget.release(event.attachments)
            if let ackID = event.ackID, self.sockets[event.socket.namespace] === event.socket {
                self.send(.ack(ackID, reply, namespace: event.socket.namespace))
            }
        }
        self.pending = []  // frees the array's storage
        self.running = false
    }

    private func send(_ packet: SocketIOPacket) {
        let messages = SocketIOSocket.messages(for: packet)
        self.session.assumeIsolated { $0.send(messages) }
    }

    /// Pauses reading once the events or their bytes reach their marks.
    private func pauseReadingIfFull() {
        guard !self.isReadingPaused,
            self.pending.count + self.held.count >= Self.pauseReadingAt || self.pendingBytes >= Self.pauseReadingAtBytes
        else { return }
        self.isReadingPaused = true
        self.session.assumeIsolated { $0.pauseReading() }
    }

    /// Reads again once both the events and their bytes are down to their resume marks.
    private func resumeReadingIfRoom() {
        guard self.isReadingPaused,
            self.pending.count + self.held.count <= Self.resumeReadingAt, self.pendingBytes <= Self.resumeReadingAtBytes
        else { return }
        self.isReadingPaused = false
        self.session.assumeIsolated { $0.resumeReading() }
    }

    /// Closes the session. `notifyClient: false` for a limit or a timeout the client did not
    /// break the protocol to reach (the attachments budget, a slow upload): without the close
    /// packet, stock clients take it for a lost transport and reconnect, where python-socketio
    /// takes the close packet for a goodbye and stays away.
    private func closeSession(reason: String, notifyClient: Bool = true) {
        self.session.assumeIsolated { $0.close(reason: reason, notifyClient: notifyClient) }
    }

    private var isSessionClosed: Bool {
        self.session.assumeIsolated { $0.isClosed }
    }

    /// Disconnects `socket` from the server side: a DISCONNECT packet for its namespace (stock
    /// clients do not reconnect after one), and the connection closes once it has no socket left.
    ///
    /// Stock clients close the connection themselves when their last namespace is disconnected;
    /// one that does not is closed ``closeAfterServerDisconnect`` later, unless it connected a
    /// namespace again meanwhile. Closing at once would drop the DISCONNECT on its way to a
    /// polling client whose next GET had not arrived yet.
    func disconnect(_ socket: SocketIOSocket) {
        guard self.sockets[socket.namespace] === socket else { return }
        self.send(SocketIOPacket(kind: .disconnect, namespace: socket.namespace))
        self.leave(socket.namespace)
        guard self.sockets.isEmpty else { return }
        self.session.eventLoop.scheduleTask(in: Self.closeAfterServerDisconnect) { [weak self] in
            self?.assumeIsolated { connection in
                guard connection.sockets.isEmpty, connection.connecting.isEmpty else { return }
                connection.closeSession(reason: "server disconnect")
            }
        }
    }

    private func leave(_ namespace: String) {
        if let socket = self.sockets.removeValue(forKey: namespace) {
            self.server.rooms.leaveAll(socket, rooms: ["user:\(socket.userID)"])
            self.server.onDisconnect?(socket)
        }
    }

    /// While a binary packet waits for attachments, its connection must send all of them by
    /// their ``AttachmentDeadline`` (a minute from the header, and more for each KiB that came);
    /// once none waits, what a packet left unfinished goes back to the budget. A client that
    /// announced 32 attachments and sent 31 held 31 MB until it closed.
    private func watchAttachments() {
        guard self.decoder.isAwaitingAttachments, !self.isSessionClosed else {
            self.attachmentTimer?.timer.cancel()
            self.attachmentTimer = nil
            self.attachmentDeadline = nil
            self.releaseAttachments()
            return
        }
        if self.attachmentDeadline == nil {
            self.attachmentDeadline = AttachmentDeadline(started: .now(), maxPayload: self.session.configuration.maxPayload)
        }
        guard let deadline = self.attachmentDeadline?.deadline, deadline != self.attachmentTimer?.deadline else { return }
        self.attachmentTimer?.timer.cancel()
        // A timer already due in the loop's turn runs despite its cancel: it closes only if it is
        // still the packet's.
        let timer = self.session.eventLoop.scheduleTask(deadline: deadline) { [weak self] () -> Void in
            self?.assumeIsolated { connection in
                guard connection.attachmentTimer?.deadline == deadline else { return }
                connection.closeSession(reason: "binary attachments too slow", notifyClient: false)
            }
        }
        self.attachmentTimer = (timer, deadline)
    }

    private func releaseAttachments() {
        guard self.holdsAttachments else { return }
        self.holdsAttachments = false
        if self.server.attachmentBudget.abandon(self.holderID) { self.closeEvicted() }
    }

    /// Closes a connection whose packet under way had its attachments taken back for users
    /// holding less (``HeldBytesBudget/reserve(_:for:holder:)``), as a lost transport: the
    /// client may reconnect and send again.
    private func closeEvicted() {
        guard !self.isSessionClosed else { return }
        self.server.logger.info(
            "closing a connection: its attachments were taken back for users holding less",
            metadata: ["eio.sid": "\(self.session.id)"])
        self.closeSession(reason: "attachments taken back", notifyClient: false)
    }

    private func closed() {
        self.attachmentTimer?.timer.cancel()
        self.attachmentTimer = nil
        self.attachmentDeadline = nil
        self.releaseAttachments()
        self.connectTimeout?.cancel()
        self.connectTimeout = nil
        for namespace in Array(self.sockets.keys) { self.leave(namespace) }
        // `pending` is left to `runPending`: those events arrived while their socket was open.
        for (_, bytes) in self.held { self.pendingBytes -= bytes }
        self.held = []
    }

}
