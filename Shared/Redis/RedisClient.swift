import DequeModule
import Logging
import ServiceLifecycle
import Synchronization
import ThreadedIO

/// Redis commands over hiredis, safe to share between tasks.
///
/// One thread owns the hiredis context. Commands are written as they arrive, those that arrive
/// together as one pipeline, and replies are read as they come back, so many concurrent callers
/// cost few round trips and a command never waits for an earlier one's reply. A broken
/// connection fails the commands under way (the caller decides whether to retry) and reconnects
/// with backoff; commands sent while disconnected fail at once with a `connection` error.
public final class RedisClient: Service, Sendable {
    struct Request: Sendable {
        var arguments: [[UInt8]]
        var promise: Promise<RedisValue>
        /// False when no one waits for the reply: the thread then does not wake up for it, and
        /// reads it the next time it is up.
        var awaited = true
        /// When it was written (set by the thread).
        var sentAt: ContinuousClock.Instant?
    }

    enum Command: Sendable {
        case request(Request)
        case shutdown(Promise<Void>)
    }

    private let thread: HandleThread<Command>
    private let status = ConnectedFlag()
    private var mailbox: Mailbox<Command> { self.thread.mailbox }
    /// A value each time a command sent without waiting for its reply
    /// (``publishWithoutReply(_:)``) may not have been done: Redis refused it, the connection
    /// was lost before its reply, or it came while Redis was unreachable. Values not read yet
    /// collapse into one. Iterate it once.
    public let lostPublishes: AsyncStream<Void>

    public init(configuration: RedisConfiguration, logger: Logger) {
        let status = self.status
        let (lostPublishes, lost) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.lostPublishes = lostPublishes
        self.thread = HandleThread(name: "redis-commands", shutdownCommand: { .shutdown($0) }) {
            RedisCommandDriver(configuration: configuration, mailbox: $0, status: status, lostPublishes: lost, logger: logger)
                .run()
            lost.finish()
        }
    }

    /// True while connected.
    public var isConnected: Bool { self.status.isConnected }

    /// Runs until graceful shutdown, then closes the connection.
    public func run() async throws {
        try? await gracefulShutdown()
        await self.close()
    }

    /// Closes the connection; later commands fail with `shutdown`.
    public func close() async {
        await self.thread.stop()
    }

    /// Runs one command given as its arguments (binary-safe). An error reply throws
    /// ``RedisError`` `server`.
    @discardableResult
    public func command(_ arguments: [[UInt8]]) async throws -> RedisValue {
        let promise = Promise<RedisValue>()
        guard self.mailbox.send(.request(Request(arguments: arguments, promise: promise))) else {
            throw RedisError(.shutdown, "the Redis client is closed")
        }
        return try await promise.value()
    }

    /// Runs one command given as text arguments.
    @discardableResult
    public func command(_ arguments: String...) async throws -> RedisValue {
        try await self.command(arguments.map { Array($0.utf8) })
    }

    /// `PUBLISH channel message` without waiting for the reply: publishes still go out in call
    /// order on the one connection, and the reply is read and dropped. For fan-out, whose loss
    /// the callers cover otherwise. False when the client is closed.
    @discardableResult
    public func publishWithoutReply(channel: String, message: [UInt8]) -> Bool {
        self.publishWithoutReply([(channel, message)])
    }

    /// Several `PUBLISH`es without waiting for their replies, in order and handed to the
    /// connection's thread together: one wake-up and one pipeline for all of them. False when
    /// the client is closed (an empty list is true: nothing to refuse).
    @discardableResult
    public func publishWithoutReply(_ messages: [(channel: String, message: [UInt8])]) -> Bool {
        guard !messages.isEmpty else { return true }
        return self.mailbox.send(
            contentsOf: messages.map {
                .request(
                    Request(
                        arguments: [Array("PUBLISH".utf8), Array($0.channel.utf8), $0.message], promise: Promise(),
                        awaited: false))
            })
    }

    /// `PUBLISH channel message`; returns how many subscribers received it.
    @discardableResult
    public func publish(channel: String, message: [UInt8]) async throws -> Int {
        let reply = try await self.command([Array("PUBLISH".utf8), Array(channel.utf8), message])
        return Int(reply.integer ?? 0)
    }
}

/// The command connection's thread-side loop.
final class RedisCommandDriver {
    private let configuration: RedisConfiguration
    private let mailbox: Mailbox<RedisClient.Command>
    private let status: ConnectedFlag
    private let lostPublishes: AsyncStream<Void>.Continuation
    private let logger: Logger
    private var context: HiredisContext?
    private var stopRequest = StopRequest()
    /// Commands written whose replies have not been read yet, in order.
    private var unanswered: Deque<RedisClient.Request> = []
    /// How many of them a caller waits for.
    private var awaited = 0
    /// The wait between connection attempts. It starts again once a connection has answered a
    /// command, not when it is made: a server that accepts and then closes (Redis at its client
    /// limit, a proxy whose backend is down) is not a connection. Until the forty-fifth session
    /// the driver reconnected at once each time, once per fan-out batch (review).
    private var backoff = Backoff()
    private var answeredOnThisConnection = false
    /// The last connection was lost before it answered anything: wait before the next.
    private var lostBeforeAReply = false

    init(
        configuration: RedisConfiguration, mailbox: Mailbox<RedisClient.Command>, status: ConnectedFlag,
        lostPublishes: AsyncStream<Void>.Continuation, logger: Logger
    ) {
        self.configuration = configuration
        self.mailbox = mailbox
        self.status = status
        self.lostPublishes = lostPublishes
        self.logger = logger
    }

    func run() {
        self.backoff = Backoff(
            initial: self.configuration.reconnectInitialDelay, maximum: self.configuration.reconnectMaximumDelay)
        var failures = 0
        while !self.stopRequest.isAsked {
            guard let context = self.context else {
                if self.lostBeforeAReply {
                    self.lostBeforeAReply = false
                    self.sleep(self.backoff.next())
                    continue
                }
                do {
                    self.context = try HiredisContext(self.configuration)
                    self.answeredOnThisConnection = false
                    self.status.set(connected: true)
                    failures = 0
                    self.logger.info(
                        "Redis connected", metadata: ["host": "\(self.configuration.host):\(self.configuration.port)"])
                } catch {
                    failures += 1
                    if ReconnectLoop.isWorthAWarning(failuresInARow: failures) {
                        self.logger.warning(
                            "Redis unreachable, retrying", metadata: ["error": "\(error)", "attempt": "\(failures)"])
                    }
                    self.failQueued(RedisError(.connection, "Redis is unreachable"))
                    self.sleep(self.backoff.next())
                }
                continue
            }
            // The socket wakes the thread only for replies someone waits for.
            self.mailbox.wait(socket: self.awaited > 0 ? context.fileDescriptor : nil, timeoutMilliseconds: 1000)
            var requests: [RedisClient.Request] = []
            for command in self.mailbox.drain() {
                switch command {
                case .request(let request): requests.append(request)
                case .shutdown(let promise): self.stopRequest.ask(promise)
                }
            }
            do {
                try self.readReplies(from: context)
            } catch {
                // The requests just taken were not sent: they fail with the ones under way
                // (until the fortieth session they were dropped, and their callers waited for ever).
                self.connectionLost(error, notSent: requests)
                continue
            }
            do {
                if !requests.isEmpty { try self.send(requests, on: context) }
            } catch {
                self.connectionLost(error)
                continue
            }
            // A reply that does not come in time: a stalled server, or a link that died without
            // closing (replies are read only when the socket is readable, so a socket timeout
            // would never fire). Until the fortieth session such a command waited for ever.
            if let oldest = self.unanswered.first?.sentAt, ContinuousClock.now - oldest > self.configuration.timeout {
                self.connectionLost(RedisError(.connection, "no reply within \(self.configuration.timeout)"))
            }
        }
        if let context = self.context {
            // Replies callers still wait for, before closing.
            do {
                while self.awaited > 0, !self.unanswered.isEmpty { self.answer(try context.readReply()) }
            } catch {
                self.connectionLost(error)
            }
        }
        self.context = nil
        self.status.set(connected: false)
        let closed = RedisError(.shutdown, "the Redis client is closed")
        for request in self.unanswered { request.promise.fail(closed) }
        self.unanswered.removeAll()
        for command in self.mailbox.close() {
            switch command {
            case .request(let request): request.promise.fail(closed)
            case .shutdown(let promise): promise.succeed(())
            }
        }
        self.stopRequest.answer()
    }

    /// Writes `requests` as one pipeline; their replies are read as they come. They count as
    /// under way first, so that a failure part way fails every one of them.
    private func send(_ requests: [RedisClient.Request], on context: HiredisContext) throws {
        let now = ContinuousClock.now
        for var request in requests {
            request.sentAt = now
            self.unanswered.append(request)
            if request.awaited { self.awaited += 1 }
        }
        for request in requests { try context.append(request.arguments) }
        try context.flush()
    }

    /// Hands out every reply the socket has now, in command order, without waiting.
    private func readReplies(from context: HiredisContext) throws {
        guard !self.unanswered.isEmpty, context.isReadable else { return }
        try context.readAvailable()
        while !self.unanswered.isEmpty, let reply = try context.bufferedReply() { self.answer(reply) }
    }

    private func answer(_ reply: Result<RedisValue, RedisError>) {
        let request = self.unanswered.removeFirst()
        if request.awaited { self.awaited -= 1 }
        if !self.answeredOnThisConnection {
            self.answeredOnThisConnection = true
            self.backoff.reset()
        }
        switch reply {
        case .success(let value): request.promise.succeed(value)
        case .failure(let error):
            // No caller hears of an error to a command sent without waiting: the log does.
            if !request.awaited {
                self.logger.warning("Redis refused a command", metadata: ["error": "\(error)"])
                self.lostPublishes.yield()
            }
            request.promise.fail(error)
        }
    }

    /// Fails the commands under way, and `notSent`, and drops the connection (the loop
    /// reconnects).
    private func connectionLost(_ error: any Error, notSent: [RedisClient.Request] = []) {
        self.logger.warning("Redis connection lost", metadata: ["error": "\(error)"])
        let failure = error as? RedisError ?? RedisError(.connection, "\(error)")
        for request in self.unanswered { request.promise.fail(failure) }
        for request in notSent { request.promise.fail(failure) }
        if self.unanswered.contains(where: { !$0.awaited }) || notSent.contains(where: { !$0.awaited }) {
            self.lostPublishes.yield()
        }
        self.unanswered.removeAll()
        self.awaited = 0
        self.context = nil
        self.status.set(connected: false)
        self.lostBeforeAReply = !self.answeredOnThisConnection
    }

    private func failQueued(_ error: RedisError) {
        for command in self.mailbox.drain() {
            switch command {
            case .request(let request):
                if !request.awaited { self.lostPublishes.yield() }
                request.promise.fail(error)
            case .shutdown(let promise): self.stopRequest.ask(promise)
            }
        }
    }

    private func sleep(_ delay: Duration) {
        let deadline = ContinuousClock.now + delay
        while !self.stopRequest.isAsked, ContinuousClock.now < deadline {
            self.mailbox.wait(timeoutMilliseconds: Int32(max(1, Backoff.milliseconds(deadline - ContinuousClock.now))))
            self.failQueued(RedisError(.connection, "Redis is unreachable"))
        }
    }
}
