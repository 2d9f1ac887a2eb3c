import Logging
import NIOCore
import SocketIOProtocol

/// What an Engine.IO session tells the layer above it. Both calls run on the session's event
/// loop, isolated to the session, in the order things happened; neither may block.
public protocol EngineSessionDelegate: Sendable {
    func engineSession(_ session: isolated EngineSession, didReceive message: EngineMessage)
    func engineSessionDidClose(_ session: isolated EngineSession, reason: String)
}

/// A message of the layer above Engine.IO.
public enum EngineMessage: Sendable, Hashable {
    case text(String)
    case binary([UInt8])
}

/// One Engine.IO session (`sid`) over long-polling, WebSocket, or polling upgraded to
/// WebSocket. Packets to the client go through one ordered path, so a Socket.IO packet and its
/// binary attachments are never split by another message.
///
/// The session runs on one NIO event loop (its executor): a WebSocket session on its channel's
/// loop, so frames in and out need no hop. An idle session holds no task: its heartbeat is a
/// timer scheduled on the loop.
public actor EngineSession {
    public nonisolated let id: String
    /// The loop the session runs on.
    public nonisolated let eventLoop: any EventLoop
    let configuration: EngineConfiguration
    let logger: Logger
    private var delegate: (any EngineSessionDelegate)?
    /// Packets waiting for a poll (or, during an upgrade, for the WebSocket).
    private var outbox: [EngineIOPacket] = []
    /// The outbox's size in bytes, as sent (see ``EngineConfiguration/maximumBacklog``).
    private var outboxBytes = 0
    /// When the client last took packets with a GET (or the session opened).
    private var lastPoll = NIODeadline.now()
    /// Callers of ``waitForRoom()``, resumed when the outbox is small again or the session ends.
    private var roomWaiters: [CheckedContinuation<Void, Never>] = []
    private var waitingPoll: CheckedContinuation<[EngineIOPacket], any Error>?
    private var webSocket: EngineWebSocket?
    /// The WebSocket of an upgrade under way, until the client sends `5`.
    private var probing: EngineWebSocket?
    private var heartbeat: EngineHeartbeat
    private var timer: Scheduled<Void>?
    public private(set) var isClosed = false
    /// The session was closed with the close packet for the client (see ``close(reason:notifyClient:)``).
    private var closeWasNotified = false
    /// What the next GET gets after the session closed while no poll was waiting: the noop a
    /// waiting poll would have got, for a GET the client sent together with its closing POST;
    /// the close packet (and what was queued before it), for a close that tells the client.
    /// Until the forty-sixth session the latter was dropped, and the client's next GET got 400,
    /// which stock clients take for a lost transport: they reconnected instead of leaving.
    private(set) var finalPoll: [EngineIOPacket]?
    /// A long-polling POST is being read. The protocol allows one at a time.
    private var postInFlight = false
    /// The layer above asked not to be given more for now (``pauseReading()``).
    private var isReadingPaused = false
    /// The answer of a long-polling POST, held while reading is paused (``holdPostWhilePaused()``).
    private var heldPost: CheckedContinuation<Void, Never>?
    /// A long-polling GET is being answered (waiting for packets, or for an upgrade to finish).
    /// The protocol allows one at a time.
    private var pollInFlight = false

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        self.eventLoop.executor.asUnownedSerialExecutor()
    }

    init(id: String, eventLoop: any EventLoop, configuration: EngineConfiguration, logger: Logger) {
        self.id = id
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.heartbeat = EngineHeartbeat(
            interval: configuration.pingInterval, timeout: configuration.pingTimeout, openedAt: .now())
        self.logger = logger
    }

    /// Marks a POST as being read; false when one already is (the client broke the protocol).
    func beginPost() -> Bool {
        guard !self.postInFlight else { return false }
        self.postInFlight = true
        return true
    }

    func endPost() {
        self.postInFlight = false
    }

    /// Runs `body` isolated to the session: at once when called on its loop, else queued to it
    /// (in call order either way). For callers outside Swift concurrency, such as channel
    /// handlers.
    nonisolated func onLoop(_ body: @escaping @Sendable (isolated EngineSession) -> Void) {
        if self.eventLoop.inEventLoop {
            self.assumeIsolated { body($0) }
        } else {
            self.eventLoop.execute { self.assumeIsolated { body($0) } }
        }
    }

    func start(delegate: any EngineSessionDelegate, webSocket: EngineWebSocket?) {
        self.delegate = delegate
        self.webSocket = webSocket
        self.arm()
    }

    /// Schedules the heartbeat's next step.
    private func arm() {
        self.timer?.cancel()
        guard !self.isClosed else { return }
        let deadline = self.heartbeat.nextDeadline
        self.timer = self.eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            self?.assumeIsolated { $0.heartbeatDue() }
        }
    }

    private func heartbeatDue() {
        guard !self.isClosed else { return }
        switch self.heartbeat.due(at: .now()) {
        case .sendPing:
            self.sendPing()
            self.arm()
        case .timedOut:
            self.close(reason: "ping timeout", notifyClient: false)
        case .wait:
            self.arm()
        }
    }

    /// Sends the heartbeat's ping. On long-polling it goes before what waits for the next GETs:
    /// behind a catch-up's megabyte (3,500 small events, 16 a GET) it reached a client 100 ms
    /// away after about 22 s, past `pingTimeout`, and a healthy client was closed as dead
    /// (a review in the forty-fourth session). An Engine.IO ping may come between any two
    /// packets, a binary event's attachments included.
    private func sendPing() {
        guard self.webSocket == nil || self.upgrading else { return self.send([.ping("")]) }
        self.outbox.insert(.ping(""), at: 0)
        self.outboxBytes += Self.cost(of: [.ping("")])
        self.answerPoll()
    }

    /// Closes the session when its ping went unanswered past `pingTimeout`; true if it is closed.
    /// Requests check this, so a late client is refused at the deadline, not at the timer's tick.
    func closeIfPingOverdue() -> Bool {
        if self.heartbeat.isOverdue(at: .now()) {
            self.close(reason: "ping timeout", notifyClient: false)
        }
        return self.isClosed
    }

    /// Whether a long-polling GET is served: the session polls (no WebSocket), is open and its
    /// ping is not overdue, or it owes the client's last poll its answer.
    func acceptsPoll() -> Bool {
        guard !self.isWebSocket else { return false }
        return !self.closeIfPingOverdue() || self.finalPoll != nil
    }

    /// The handshake packet.
    func handshake(upgrades: [String]) -> EngineIOPacket {
        let upgradesJSON = upgrades.map { "\"\($0)\"" }.joined(separator: ",")
        return .open(
            #"{"sid":"\#(self.id)","upgrades":[\#(upgradesJSON)],"pingInterval":\#(EngineConfiguration.milliseconds(self.configuration.pingInterval)),"pingTimeout":\#(EngineConfiguration.milliseconds(self.configuration.pingTimeout)),"maxPayload":\#(self.configuration.maxPayload)}"#
        )
    }

    // MARK: To the client

    /// Sends messages of the layer above, in order.
    public func send(_ messages: [EngineMessage]) {
        self.send(
            messages.map { message in
                switch message {
                case .text(let text): .message(text)
                case .binary(let bytes): .binary(bytes)
                }
            })
    }

    func send(_ packets: [EngineIOPacket]) {
        guard !self.isClosed else { return }
        if let webSocket = self.webSocket, !self.upgrading {
            webSocket.write(packets)
            return
        }
        self.outbox += packets
        self.outboxBytes += Self.cost(of: packets)
        // A GET waiting for packets takes its share first, and counts as the client's progress:
        // one that waited longer than the stall for a burst is not taken for a client that stopped.
        self.answerPoll()
        let bound = EngineBacklog(limit: self.configuration.maximumBacklog)
        if let problem = bound.problem(bytes: self.outboxBytes, sinceProgress: .now() - self.lastPoll) {
            self.logger.info(
                "closing a session whose client \(problem.rawValue)",
                metadata: ["eio.sid": "\(self.id)", "backlog": "\(self.outboxBytes)"])
            self.close(reason: "client \(problem.rawValue)", notifyClient: false)
        }
    }

    private func answerPoll() {
        // While an upgrade is under way the queue waits for the WebSocket.
        guard let poll = self.waitingPoll, !self.outbox.isEmpty, !self.upgrading else { return }
        self.waitingPoll = nil
        poll.resume(returning: self.takePollPayload())
    }

    // MARK: Pacing

    /// Returns once the packets sent so far are mostly on their way: on a WebSocket once its
    /// channel is writable (NIO's buffer below its high-water mark), on long-polling once what
    /// waits for the next GETs is a quarter of the backlog bound or less. A sender of many
    /// packets in a row (a replay's pages) waits here, so a client is not closed for a backlog
    /// its own catch-up made, and the gateway holds a slice at a time, not the whole catch-up.
    /// (Until the thirty-eighth session a WebSocket never waited, and a catch-up of 18 MB was
    /// written at once and closed as a client that does not read.)
    ///
    /// A wait that lasts ``EngineConfiguration/longestWaitForRoom`` closes the session: until the
    /// forty-first session it could last for ever, and a client that stopped reading during its
    /// replay (answering pings all the same) held one of the gateway's replay places for good;
    /// 512 such clients stopped every later replay, and with it every later socket's events.
    ///
    /// A WebSocket on another loop than the session's (a session upgraded from polling, which
    /// both stock clients start with) gets the writes queued to its loop: its writability counts
    /// them only once they ran there, so the wait first lets them run. Until the fiftieth session
    /// it read the writability before, always found room, and a replay queued its whole page (up
    /// to about 24 MB) on such a socket at once (a review).
    public func waitForRoom() async {
        if let webSocket = self.webSocket, !self.upgrading, !webSocket.channel.eventLoop.inEventLoop {
            try? await webSocket.channel.eventLoop.submit {}.get()
        }
        guard !self.hasRoom else { return }
        let expiry = self.eventLoop.scheduleTask(in: TimeAmount(self.configuration.longestWaitForRoom)) { [weak self] in
            self?.assumeIsolated { $0.waitForRoomExpired() }
        }
        defer { expiry.cancel() }
        while !self.hasRoom {
            await withCheckedContinuation { self.roomWaiters.append($0) }
        }
    }

    private func waitForRoomExpired() {
        guard !self.hasRoom else { return }
        self.logger.info(
            "closing a session whose client does not read what waits for it",
            metadata: ["eio.sid": "\(self.id)", "backlog": "\(self.outboxBytes)"])
        self.close(reason: "client does not read", notifyClient: false)
    }

    private var hasRoom: Bool {
        if self.isClosed { return true }
        if let webSocket = self.webSocket, !self.upgrading { return webSocket.channel.isWritable }
        return self.outboxBytes <= self.configuration.maximumBacklog / 4
    }

    /// The WebSocket's channel became writable again: the senders waiting for room go on.
    func webSocketBecameWritable() {
        if self.hasRoom { self.resumeRoomWaiters() }
    }

    private func resumeRoomWaiters() {
        let waiters = self.roomWaiters
        self.roomWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Long-polling

    /// What `packets` weigh against the backlog bound: their bytes, and what a queued packet
    /// holds whatever its size (its entry, its string). Counted by bytes alone, a million
    /// one-byte packets weighed a megabyte and held 24 (a review in the forty-sixth session).
    static func cost(of packets: some Sequence<EngineIOPacket>) -> Int {
        packets.reduce(0) { $0 + $1.byteCount + Self.packetOverhead }
    }

    static let packetOverhead = 32

    /// Packets in one polling response, at most. python-engineio clients abort a connection whose
    /// response carries more than 16 (`Payload.max_decode_packets`); the rest waits for the
    /// next GET, which those clients send at once.
    static let maximumPacketsPerPoll = 16

    private func takePollPayload() -> [EngineIOPacket] {
        let packets = Array(self.outbox.prefix(Self.maximumPacketsPerPoll))
        self.outbox.removeFirst(packets.count)
        self.outboxBytes -= Self.cost(of: packets)
        self.lastPoll = .now()
        if self.hasRoom { self.resumeRoomWaiters() }
        return packets
    }

    /// A GET: the queued packets, waiting for some if there are none. A second concurrent GET
    /// is a protocol violation.
    func poll() async throws(EngineIOProtocolError) -> [EngineIOPacket] {
        guard !self.pollInFlight else { throw EngineIOProtocolError("overlapping polls") }
        self.pollInFlight = true
        defer { self.pollInFlight = false }
        if self.isClosed { return try self.answerAfterClose() }
        // During an upgrade a poll only gets a noop, so the client can finish the upgrade; a
        // client that already sent `5` on the WebSocket gets its poll refused instead, so give
        // that message a moment to land.
        if self.upgrading {
            for _ in 0..<20 where self.upgrading {
                try? await Task.sleep(for: .milliseconds(5))
            }
            if self.isClosed { return try self.answerAfterClose() }
            guard self.upgrading || self.webSocket == nil else { throw EngineIOProtocolError("upgraded") }
            return [.noop]
        }
        // A GET that got past `acceptsPoll()` just before the upgrade completed would wait here
        // for packets that now go to the WebSocket, as long as the session lasts.
        guard self.webSocket == nil else { throw EngineIOProtocolError("upgraded") }
        if !self.outbox.isEmpty {
            return self.takePollPayload()
        }
        do {
            return try await withCheckedThrowingContinuation { self.waitingPoll = $0 }
        } catch {
            throw (error as? EngineIOProtocolError) ?? EngineIOProtocolError("poll failed")
        }
    }

    /// A GET for a session that closed: what its close left for it (``finalPoll``), the close
    /// packet where the close sends one, or a refusal. The close packet only where the close sent
    /// one: python-socketio takes it for a goodbye and never reconnects, so a session closed as
    /// a lost transport refuses a GET that got past `acceptsPoll()` just before the close, as it
    /// refuses any GET after it (a GET racing a POST past `maxPayload` kept one in 26 clients
    /// away until the forty-sixth session).
    private func answerAfterClose() throws(EngineIOProtocolError) -> [EngineIOPacket] {
        if let final = self.finalPoll {
            self.finalPoll = nil
            return final
        }
        guard self.closeWasNotified else { throw EngineIOProtocolError.sessionClosed }
        return [.close]
    }

    /// A POST: packets from the client; false (nothing taken) when the session moved to its
    /// WebSocket while the POST was read, whose packets would come after the WebSocket's.
    @discardableResult
    func receive(payload: [EngineIOPacket]) -> Bool {
        guard self.webSocket == nil else { return false }
        for packet in payload { self.receive(packet) }
        return true
    }

    // MARK: From the client

    func receive(_ packet: EngineIOPacket) {
        guard !self.isClosed else { return }
        switch packet {
        case .pong:
            if self.heartbeat.pong(at: .now()) { self.arm() }
        case .ping(let data) where data == "probe" && self.upgrading:
            break  // handled by the WebSocket upgrade
        case .ping:
            // Engine.IO 4 clients answer the server's pings and send none; the reference server
            // closes such a session ("invalid heartbeat direction"). Answered, a POST of tiny
            // pings queued a pong each, a memory far past the backlog bound (a review in the
            // forty-sixth session).
            self.logger.info("closing a session whose client sent a ping", metadata: ["eio.sid": "\(self.id)"])
            self.close(reason: "invalid heartbeat direction", notifyClient: false)
        case .message(let text):
            self.delegate?.engineSession(self, didReceive: .text(text))
        case .binary(let bytes):
            self.delegate?.engineSession(self, didReceive: .binary(bytes))
        case .close:
            if !self.pollInFlight { self.finalPoll = [.noop] }
            self.close(reason: "client close", notifyClient: false)
        case .upgrade, .noop, .open:
            break
        }
    }

    /// A packet that came over the WebSocket on `channel`: taken only when that WebSocket is
    /// the session's transport. One opened with the session's sid whose upgrade was refused (the
    /// session had its WebSocket already) or given up sends nothing in the session's name:
    /// until the fiftieth session its handler took the `5` it sent after its probe for the
    /// upgrade done, and what came after it ran as the session's user (a review).
    func receive(_ packet: EngineIOPacket, over channel: any Channel) {
        guard let webSocket = self.webSocket, webSocket.channel === channel else { return }
        self.receive(packet)
    }

    /// The WebSocket on `channel` ended (closed, broken, or after bad input): the session ends
    /// with it only when it is the session's transport.
    func transportEnded(_ channel: any Channel, reason: String) {
        guard let webSocket = self.webSocket, webSocket.channel === channel else { return }
        self.close(reason: reason, notifyClient: false)
    }

    // MARK: Upgrade to WebSocket

    /// The probe of an upgrade arrived on the new WebSocket: answer it and make the pending poll
    /// return (with a noop) so the client can finish the upgrade. An upgrade not completed
    /// within `upgradeTimeout` is given up (``abandonUpgrade(_:)``).
    func beginUpgrade(_ webSocket: EngineWebSocket) {
        self.probing = webSocket
        webSocket.write([.pong("probe")])
        // A client that sends `5` right after the probe should see its pending poll refused,
        // not answered: give that message a moment before releasing the poll with a noop.
        self.eventLoop.scheduleTask(in: .milliseconds(100)) { [weak self] in
            self?.assumeIsolated { $0.releasePollDuringUpgrade() }
        }
        self.eventLoop.scheduleTask(in: TimeAmount(self.configuration.upgradeTimeout)) { [weak self] in
            self?.assumeIsolated { session in
                guard session.abandonUpgrade(webSocket) else { return }
                webSocket.close(sending: [])
            }
        }
    }

    /// The upgrade on `webSocket` failed (its connection closed before `5`, or it timed out):
    /// the session goes on polling, as the reference server does ("client did not complete
    /// upgrade"), and what waited for the WebSocket goes to the next poll. False when
    /// `webSocket` is not the one probing (the upgrade completed, or another one is under way).
    @discardableResult
    func abandonUpgrade(_ webSocket: EngineWebSocket) -> Bool {
        guard let probing = self.probing, probing.channel === webSocket.channel else { return false }
        self.probing = nil
        self.logger.debug("upgrade abandoned; polling goes on", metadata: ["eio.sid": "\(self.id)"])
        self.answerPoll()
        return true
    }

    private func releasePollDuringUpgrade() {
        guard self.upgrading, let poll = self.waitingPoll else { return }
        self.waitingPoll = nil
        poll.resume(returning: [.noop])
    }

    /// The client sent `5`: from now on everything goes over the WebSocket.
    func completeUpgrade(_ webSocket: EngineWebSocket) {
        guard !self.isClosed else {
            webSocket.close(sending: self.closeWasNotified ? [.close] : [])
            return
        }
        // Only the WebSocket that answered the probe upgrades: not one refused meanwhile, nor
        // one whose upgrade timed out as its `5` arrived.
        guard let probing = self.probing, probing.channel === webSocket.channel else {
            webSocket.close(sending: [])
            return
        }
        self.webSocket = webSocket
        self.probing = nil
        self.releaseHeldPost()
        if self.isReadingPaused {
            // Paused while polling: the WebSocket starts paused too.
            self.heartbeat.pauseReading()
            webSocket.setReading(false)
        }
        if let poll = self.waitingPoll {
            self.waitingPoll = nil
            poll.resume(throwing: EngineIOProtocolError("upgraded"))
        }
        if !self.outbox.isEmpty {
            webSocket.write(self.outbox)
            self.outbox = []
            self.outboxBytes = 0
        }
        self.resumeRoomWaiters()
    }

    /// Stops reading from the WebSocket until ``resumeReading()`` (the layer above has too much
    /// to do); meanwhile the client's pong may wait unread behind its commands, so the heartbeat
    /// does not time it out (``EngineHeartbeat``). A long-polling session's POSTs are answered
    /// late instead (``holdPostWhilePaused()``).
    func pauseReading() {
        self.isReadingPaused = true
        guard let webSocket = self.webSocket else { return }
        self.heartbeat.pauseReading()
        webSocket.setReading(false)
    }

    func resumeReading() {
        self.isReadingPaused = false
        self.releaseHeldPost()
        guard let webSocket = self.webSocket else { return }
        if self.heartbeat.resumeReading(at: .now()) { self.arm() }
        webSocket.setReading(true)
    }

    /// Long-polling's back-pressure: after a POST's packets were handed on, its answer waits
    /// while reading is paused, for ``EngineConfiguration/longestPostHold`` at most. A client
    /// sends its next POST only once the last is answered (the protocol allows one at a time),
    /// so it sends no faster than its commands run. Not longer: python-engineio gives a POST
    /// 5 s, and fails the connection past that.
    func holdPostWhilePaused() async {
        guard self.isReadingPaused, !self.isClosed, self.webSocket == nil, self.heldPost == nil else { return }
        let timeout = self.eventLoop.scheduleTask(in: TimeAmount(self.configuration.longestPostHold)) { [weak self] in
            self?.assumeIsolated { $0.releaseHeldPost() }
        }
        await withCheckedContinuation { self.heldPost = $0 }
        timeout.cancel()
    }

    private func releaseHeldPost() {
        let post = self.heldPost
        self.heldPost = nil
        post?.resume()
    }

    /// Whether an upgrade to WebSocket is under way (probe answered, `5` not yet received).
    private var upgrading: Bool { self.probing != nil }

    var isWebSocket: Bool { self.webSocket != nil && !self.upgrading }

    /// A session upgrades once: a WebSocket that comes for a session that already uses or is
    /// moving to one, or that is closed, is closed at once. True when `webSocket` was refused.
    func refusesUpgrade(to webSocket: EngineWebSocket) -> Bool {
        guard self.webSocket != nil || self.upgrading || self.isClosed else { return false }
        EngineWebSocketHandler.close(webSocket.channel, code: .policyViolation)
        return true
    }

    // MARK: Closing

    /// Closes the session (telling the client, unless it is gone) and tells the delegate once.
    public func close(reason: String, notifyClient: Bool = true) {
        guard !self.isClosed else { return }
        self.isClosed = true
        self.closeWasNotified = notifyClient
        self.timer?.cancel()
        self.timer = nil
        if notifyClient { self.outbox.append(.close) }
        let limit = Self.maximumPacketsPerPoll
        let closing = self.outbox.count <= limit ? self.outbox : Array(self.outbox.prefix(limit - 1)) + [.close]
        if let poll = self.waitingPoll {
            // A client that closed gets a noop to end its pending poll; otherwise the close.
            self.waitingPoll = nil
            poll.resume(returning: notifyClient ? closing : [.noop])
        } else if notifyClient, self.webSocket == nil {
            self.finalPoll = closing  // for the client's next GET
        }
        if let webSocket = self.webSocket {
            webSocket.close(sending: notifyClient ? [.close] : [])
        }
        self.probing?.close(sending: [])
        self.probing = nil
        self.outbox = []
        self.outboxBytes = 0
        self.resumeRoomWaiters()
        self.releaseHeldPost()
        let delegate = self.delegate
        self.delegate = nil
        self.logger.debug("engine session closed", metadata: ["eio.sid": "\(self.id)", "reason": "\(reason)"])
        delegate?.engineSessionDidClose(self, reason: reason)
    }
}
