import DequeModule
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import ThreadedIO

/// A message received on a subscribed channel or pattern.
public struct RedisPubSubMessage: Sendable, Hashable {
    public var channel: String
    /// The pattern that matched, for `PSUBSCRIBE` subscriptions.
    public var pattern: String?
    public var payload: [UInt8]

    public init(channel: String, pattern: String?, payload: [UInt8]) {
        self.channel = channel
        self.pattern = pattern
        self.payload = payload
    }
}

/// A Redis subscriber connection (SUBSCRIBE / PSUBSCRIBE) that delivers messages as an
/// `AsyncSequence`, reconnects by itself and subscribes again to everything after a reconnect.
///
/// Pub/sub is fire-and-forget in Redis: messages published while the connection is down are not
/// seen. Callers that need every message keep them elsewhere (this system keeps events in the
/// delivery service and replays them), and ``gaps`` tells them when to look there.
///
/// At most `buffer` bytes of payloads wait to be read (a larger message is dropped whole); past
/// it the newest messages are dropped, counted in `redis_subscriber_dropped_total` and logged.
/// Until the forty-first session nothing bounded them: a gateway slower to fan out than the
/// others are to publish (one holding most of a busy room's sockets) took their backlog into its
/// heap, out of reach of Redis's own bound on a subscriber's output (`client-output-buffer-limit
/// pubsub`, which drops such a subscriber).
public final class RedisSubscriber: Service, Sendable {
    enum Command: Sendable {
        case subscribe(channels: [String], patterns: [String], Promise<Void>)
        case shutdown(Promise<Void>)
    }

    private let thread: HandleThread<Command>
    private let status = ConnectedFlag()
    private let buffered: BufferedMessages
    private var mailbox: Mailbox<Command> { self.thread.mailbox }
    /// Every message, in arrival order. Iterate it once.
    public let messages: RedisPubSubMessages
    /// A value each time messages may have been missed: once a new connection has subscribed
    /// again after one was lost, and after a message was dropped because the buffer was full.
    /// Values not read yet collapse into one. Iterate it once.
    public let gaps: AsyncStream<Void>

    /// - Parameter skip: messages whose payload it returns true for are dropped on the
    ///   connection's thread instead of being handed to `messages`: for a publisher's own
    ///   messages coming back, which would otherwise wake a task only to be thrown away.
    public init(
        configuration: RedisConfiguration, logger: Logger, buffer: Int = RedisSubscriber.defaultBufferBytes,
        skip: (@Sendable (_ payload: [UInt8]) -> Bool)? = nil
    ) {
        let (stream, continuation) = AsyncStream.makeStream(of: RedisPubSubMessage.self)
        let (gaps, gapContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let buffered = BufferedMessages(limit: max(1, buffer))
        self.buffered = buffered
        self.messages = RedisPubSubMessages(stream: stream, buffered: buffered)
        self.gaps = gaps
        let status = self.status
        self.thread = HandleThread(name: "redis-subscriber", shutdownCommand: { .shutdown($0) }) {
            RedisSubscriberDriver(
                configuration: configuration, mailbox: $0, status: status, output: continuation, gaps: gapContinuation,
                buffered: buffered, skip: skip, logger: logger
            )
            .run()
            continuation.finish()
            gapContinuation.finish()
        }
    }

    /// True while connected and subscribed.
    public var isConnected: Bool { self.status.isConnected }

    /// Payload bytes that may wait to be read: seconds of a gateway's busiest fan-out.
    public static let defaultBufferBytes = 32 << 20
    /// `redis_subscriber_dropped_total`: messages dropped because the buffer was full.
    static let dropped = Counter(label: "redis_subscriber_dropped_total")

    /// How many messages this subscriber dropped (``defaultBufferBytes``).
    public var droppedMessages: Int { self.buffered.dropped.load(ordering: .relaxed) }

    /// Subscribes to channels and patterns; returns once Redis confirmed every one of them. The
    /// subscriptions are renewed after every reconnect.
    public func subscribe(channels: [String] = [], patterns: [String] = []) async throws {
        let promise = Promise<Void>()
        guard self.mailbox.send(.subscribe(channels: channels, patterns: patterns, promise)) else {
            throw RedisError(.shutdown, "the subscriber is closed")
        }
        try await promise.value()
    }

    public func run() async throws {
        try? await gracefulShutdown()
        await self.close()
    }

    /// Closes the connection and ends `messages`.
    public func close() async {
        await self.thread.stop()
    }
}

/// The subscriber connection's thread-side loop.
final class RedisSubscriberDriver {
    /// A silent connection is checked with PING this often; no answer within the same time
    /// counts as a dead connection.
    private static let keepAlive: Duration = .seconds(5)

    private let configuration: RedisConfiguration
    private let mailbox: Mailbox<RedisSubscriber.Command>
    private let status: ConnectedFlag
    private let output: AsyncStream<RedisPubSubMessage>.Continuation
    private let gaps: AsyncStream<Void>.Continuation
    private let buffered: BufferedMessages
    private let skip: (@Sendable ([UInt8]) -> Bool)?
    private let logger: Logger

    private var channels: Set<String> = []
    private var patterns: Set<String> = []
    /// Subscription confirmations still expected, in order, each with the caller to tell. A
    /// caller's entry is added before its command is written, so a write that fails leaves it
    /// here, and the lost connection moves it to `waitingForConnection`.
    private var confirmations: Deque<AwaitedConfirmation> = []
    /// Callers told once the next connection has subscribed again; failed at shutdown.
    private var waitingForConnection: [Promise<Void>] = []
    private var context: HiredisContext?
    private var lastActivity = ContinuousClock.now
    private var pingSentAt: ContinuousClock.Instant?
    private var stopRequest = StopRequest()
    /// Whether Redis confirmed the current connection's resubscription.
    private var resubscribed = false
    /// A connection was lost while subscribed to something: the next one's resubscription is
    /// told as a gap.
    private var missedWhileDisconnected = false
    /// Messages dropped since the last warning, and when it was logged.
    private var droppedSinceWarning = 0
    private var lastDropWarning: ContinuousClock.Instant?

    init(
        configuration: RedisConfiguration, mailbox: Mailbox<RedisSubscriber.Command>, status: ConnectedFlag,
        output: AsyncStream<RedisPubSubMessage>.Continuation, gaps: AsyncStream<Void>.Continuation,
        buffered: BufferedMessages, skip: (@Sendable ([UInt8]) -> Bool)?, logger: Logger
    ) {
        self.configuration = configuration
        self.mailbox = mailbox
        self.status = status
        self.output = output
        self.gaps = gaps
        self.buffered = buffered
        self.skip = skip
        self.logger = logger
    }

    func run() {
        ReconnectLoop.run(
            backoff: Backoff(
                initial: self.configuration.reconnectInitialDelay, maximum: self.configuration.reconnectMaximumDelay),
            isStopping: { self.stopRequest.isAsked },
            connectAndServe: { connected in
                try self.connect()
                // The backoff starts again only once Redis confirmed the resubscription: a server
                // that accepts and then refuses or closes (at its client limit, behind a proxy
                // whose backend is down) is not a connection.
                try self.serve(onceResubscribed: connected)
            },
            lost: { error, failures in
                if ReconnectLoop.isWorthAWarning(failuresInARow: failures) {
                    self.logger.warning(
                        "Redis subscriber disconnected, reconnecting",
                        metadata: ["error": "\(error)", "attempt": "\(failures)"])
                }
                self.context = nil
                self.status.set(connected: false)
                if !self.channels.isEmpty || !self.patterns.isEmpty { self.missedWhileDisconnected = true }
                // Callers waiting for a confirmation get it after the resubscription instead, but
                // for one whose subscription Redis already refused in part: it is told so now
                // (until the fifty-ninth session it was carried over and told it was subscribed;
                // a review).
                for entry in self.confirmations {
                    guard let promise = entry.promise else { continue }
                    if let refusal = entry.refusal {
                        promise.fail(refusal)
                    } else {
                        self.waitingForConnection.append(promise)
                    }
                }
                self.confirmations.removeAll()
            },
            wait: { self.sleep($0) })
        self.context = nil
        self.status.set(connected: false)
        let closed = RedisError(.shutdown, "the subscriber is closed")
        for entry in self.confirmations { entry.promise?.fail(closed) }
        for promise in self.waitingForConnection { promise.fail(closed) }
        for command in self.mailbox.close() {
            switch command {
            case .subscribe(_, _, let promise): promise.fail(closed)
            case .shutdown(let promise): promise.succeed(())
            }
        }
        self.stopRequest.answer()
    }

    private func connect() throws {
        let context = try HiredisContext(self.configuration)
        self.context = context
        self.lastActivity = ContinuousClock.now
        self.pingSentAt = nil
        // The waiting callers are told after the resubscription's confirmations. They are in
        // `confirmations` before anything is written: if the write fails, `lost` hands them back
        // to `waitingForConnection` for the next attempt.
        self.resubscribed = false
        var resubscription = AwaitedConfirmation(channels: Array(self.channels), patterns: Array(self.patterns))
        resubscription.isResubscription = true
        self.confirmations.append(resubscription)
        for promise in self.waitingForConnection {
            self.confirmations.append(AwaitedConfirmation(channels: [], patterns: [], promise: promise))
        }
        self.waitingForConnection = []
        try self.write(channels: Array(self.channels), patterns: Array(self.patterns))
        self.settleConfirmations()
    }

    /// Subscribes on the live connection; `promise` is recorded before anything is written (see
    /// ``confirmations``).
    private func send(channels: [String], patterns: [String], promise: Promise<Void>) throws {
        guard self.context != nil else {
            self.waitingForConnection.append(promise)
            return
        }
        self.confirmations.append(AwaitedConfirmation(channels: channels, patterns: patterns, promise: promise))
        try self.write(channels: channels, patterns: patterns)
        self.settleConfirmations()
    }

    private func write(channels: [String], patterns: [String]) throws {
        guard let context = self.context else { throw RedisError(.connection, "not connected") }
        if !channels.isEmpty { try context.append([Array("SUBSCRIBE".utf8)] + channels.map { Array($0.utf8) }) }
        if !patterns.isEmpty { try context.append([Array("PSUBSCRIBE".utf8)] + patterns.map { Array($0.utf8) }) }
        try context.flush()
    }

    /// Serves the connection until shutdown; `resubscribed` runs once Redis has confirmed the
    /// resubscription.
    private func serve(onceResubscribed resubscribed: () -> Void) throws {
        var toldResubscribed = false
        while !self.stopRequest.isAsked {
            if self.resubscribed, !toldResubscribed {
                toldResubscribed = true
                resubscribed()
            }
            let commands = self.mailbox.drain()
            for (index, command) in commands.enumerated() {
                do {
                    try self.handle(command)
                } catch {
                    // The commands drained with the one that failed wait for the next connection.
                    for later in commands[(index + 1)...] { self.hold(later) }
                    throw error
                }
            }
            guard let context = self.context else { return }
            let readiness = self.mailbox.wait(socket: context.fileDescriptor, timeoutMilliseconds: 1000)
            if readiness.socketReadable {
                try context.readAvailable()
                self.lastActivity = ContinuousClock.now
                self.pingSentAt = nil
                while let reply = try context.bufferedReply() {
                    switch reply {
                    case .success(let value): self.handle(value)
                    case .failure(let error): try self.refused(error)
                    }
                }
            }
            try self.checkAlive()
        }
    }

    private func handle(_ command: RedisSubscriber.Command) throws {
        switch command {
        case .subscribe(let channels, let patterns, let promise):
            let newChannels = channels.filter { !self.channels.contains($0) }
            let newPatterns = patterns.filter { !self.patterns.contains($0) }
            self.channels.formUnion(newChannels)
            self.patterns.formUnion(newPatterns)
            try self.send(channels: newChannels, patterns: newPatterns, promise: promise)
        case .shutdown(let promise):
            self.stopRequest.ask(promise)
        }
    }

    /// Hands a message to the reader, or drops it when the buffer is full (a warning every ten
    /// seconds at most while that lasts).
    private func deliver(_ message: RedisPubSubMessage) {
        if self.buffered.take(message.payload.count) {
            self.output.yield(message)
            return
        }
        RedisSubscriber.dropped.increment()
        self.buffered.dropped.add(1, ordering: .relaxed)
        self.gaps.yield()
        self.droppedSinceWarning += 1
        let now = ContinuousClock.now
        if let last = self.lastDropWarning, now - last < .seconds(10) { return }
        self.logger.warning(
            "subscribed messages dropped: too many wait to be read",
            metadata: ["dropped": "\(self.droppedSinceWarning)"])
        self.droppedSinceWarning = 0
        self.lastDropWarning = now
    }

    private func handle(_ value: RedisValue) {
        guard case .array(let items) = value, let kind = items.first?.text else { return }
        switch kind {
        case "message" where items.count == 3:
            if case .string(let payload) = items[2], self.skip?(payload) != true {
                self.deliver(RedisPubSubMessage(channel: items[1].text ?? "", pattern: nil, payload: payload))
            }
        case "pmessage" where items.count == 4:
            if case .string(let payload) = items[3], self.skip?(payload) != true {
                self.deliver(RedisPubSubMessage(channel: items[2].text ?? "", pattern: items[1].text, payload: payload))
            }
        case "subscribe", "psubscribe":
            // Replies come in the order the commands went: a subscription's SUBSCRIBE, then its
            // PSUBSCRIBE, then the next subscription's.
            if let index = self.confirmations.firstIndex(where: { $0.remaining > 0 }) {
                if kind == "subscribe" {
                    self.confirmations[index].channelsLeft -= 1
                } else {
                    self.confirmations[index].patternsLeft -= 1
                }
            }
            self.settleConfirmations()
        default:
            break  // "pong", "unsubscribe"
        }
    }

    /// An error reply: the server refused a SUBSCRIBE or PSUBSCRIBE (an ACL without the
    /// channel, say). The oldest subscription waiting for its confirmations fails, rather than
    /// leaving its caller, and every later one, waiting for ever.
    /// Its names leave the subscribed sets, so that a later subscribe to them asks again (and
    /// a reconnect does not ask for them). An error that answers the resubscription of a new
    /// connection ends the connection instead, and the names stay: it is most often not about
    /// them but the server's refusing the connection (`-ERR max number of clients reached`,
    /// protected mode's `-DENIED`), written before it closes. Until the forty-fifth session it
    /// took every name out, and the next connection subscribed to nothing and said it was ready
    /// (review).
    private func refused(_ error: RedisError) throws {
        guard let index = self.confirmations.firstIndex(where: { $0.remaining > 0 }) else {
            self.logger.error("Redis sent an error no subscription waited for", metadata: ["error": "\(error)"])
            return
        }
        // Even an ACL's refusal (`-NOPERM`): Redis refuses a whole SUBSCRIBE for one name, and
        // the resubscription asks for every name at once, so dropping the names it names would
        // drop them all, silently. The subscriber stays disconnected instead, and says so.
        if self.confirmations[index].isResubscription {
            throw RedisError(.connection, "Redis refused the resubscription: \(error)")
        }
        self.logger.error("Redis refused a subscription", metadata: ["error": "\(error)"])
        if self.confirmations[index].channelsLeft > 0 {
            self.channels.subtract(self.confirmations[index].channels)
            self.confirmations[index].channelsLeft = 0
        } else {
            self.patterns.subtract(self.confirmations[index].patterns)
            self.confirmations[index].patternsLeft = 0
        }
        self.confirmations[index].refusal = error
        self.settleConfirmations()
    }

    private func settleConfirmations() {
        while let first = self.confirmations.first, first.remaining <= 0 {
            self.confirmations.removeFirst()
            if first.isResubscription {
                self.resubscribed = true
                self.status.set(connected: true)
                self.logger.info(
                    "Redis subscriber connected",
                    metadata: ["channels": "\(self.channels.count)", "patterns": "\(self.patterns.count)"])
                if self.missedWhileDisconnected {
                    self.missedWhileDisconnected = false
                    self.gaps.yield()
                }
            }
            if let refusal = first.refusal { first.promise?.fail(refusal) } else { first.promise?.succeed(()) }
        }
    }

    /// Sends PING after a quiet spell and treats a PING left unanswered as a dead connection.
    private func checkAlive() throws {
        let now = ContinuousClock.now
        if let sentAt = self.pingSentAt {
            if now - sentAt > Self.keepAlive { throw RedisError(.connection, "no answer to PING") }
        } else if now - self.lastActivity > Self.keepAlive, let context = self.context {
            try context.append([Array("PING".utf8)])
            try context.flush()
            self.pingSentAt = now
        }
    }

    private func sleep(_ delay: Duration) {
        let deadline = ContinuousClock.now + delay
        while !self.stopRequest.isAsked, ContinuousClock.now < deadline {
            self.mailbox.wait(timeoutMilliseconds: Int32(max(1, Backoff.milliseconds(deadline - ContinuousClock.now))))
            for command in self.mailbox.drain() { self.hold(command) }
        }
    }

    /// Keeps a command for the next connection, which subscribes to everything again and then
    /// tells its caller.
    private func hold(_ command: RedisSubscriber.Command) {
        switch command {
        case .subscribe(let channels, let patterns, let promise):
            self.channels.formUnion(channels)
            self.patterns.formUnion(patterns)
            self.waitingForConnection.append(promise)
        case .shutdown(let promise):
            self.stopRequest.ask(promise)
        }
    }
}

/// A subscription waiting for Redis's confirmations (one per name), with the caller to tell.
struct AwaitedConfirmation {
    let channels: [String]
    let patterns: [String]
    var channelsLeft: Int
    var patternsLeft: Int
    var promise: Promise<Void>?
    /// Redis refused its SUBSCRIBE or PSUBSCRIBE: the caller is told so once the other is done.
    var refusal: RedisError?
    /// The names a new connection subscribes to again (no caller waits for it).
    var isResubscription = false

    init(channels: [String], patterns: [String], promise: Promise<Void>? = nil) {
        self.channels = channels
        self.patterns = patterns
        self.channelsLeft = channels.count
        self.patternsLeft = patterns.count
        self.promise = promise
    }

    var remaining: Int { self.channelsLeft + self.patternsLeft }
}

/// The payload bytes waiting to be read, against their limit, and the messages dropped.
final class BufferedMessages: Sendable {
    let limit: Int
    private let bytes = Atomic(0)
    let dropped = Atomic(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts `count` bytes in, unless that would pass the limit. A message alone larger than
    /// the limit never goes: until the sixtieth session it went when nothing waited, and one
    /// publish of hundreds of megabytes (Redis takes up to 512 MB) was decoded by every gateway
    /// at once (a review).
    func take(_ count: Int) -> Bool {
        let waiting = self.bytes.load(ordering: .relaxed)
        guard waiting + count <= self.limit else { return false }
        self.bytes.add(count, ordering: .relaxed)
        return true
    }

    func release(_ count: Int) {
        self.bytes.subtract(count, ordering: .relaxed)
    }
}

/// The messages of a ``RedisSubscriber``, in arrival order: an `AsyncSequence` to iterate once,
/// which frees each message's room in the buffer as it is read.
public struct RedisPubSubMessages: AsyncSequence, Sendable {
    public typealias Element = RedisPubSubMessage
    let stream: AsyncStream<RedisPubSubMessage>
    let buffered: BufferedMessages

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<RedisPubSubMessage>.AsyncIterator
        let buffered: BufferedMessages

        public mutating func next() async -> RedisPubSubMessage? {
            guard let message = await self.base.next() else { return nil }
            self.buffered.release(message.payload.count)
            return message
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.stream.makeAsyncIterator(), buffered: self.buffered)
    }
}
