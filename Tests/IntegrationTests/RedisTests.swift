import Foundation
import MessengerRedis
import Synchronization
import TestSupport
import Testing

@Suite("Redis over hiredis", .timeLimit(.minutes(1)))
struct RedisTests {
    @Test("commands round-trip, errors are errors, and concurrent commands are pipelined correctly")
    func commands() async throws {
        let client = RedisClient(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        defer { Task { await client.close() } }
        #expect(await TestHelpers.eventually(timeout: .seconds(5)) { client.isConnected })
        let key = TestEnvironment.uniqueName("test:key")
        try await client.command("SET", key, "value", "EX", "60")
        #expect(try await client.command("GET", key).text == "value")
        await #expect(throws: RedisError.self) { try await client.command("INCR", key) }

        let counter = TestEnvironment.uniqueName("test:counter")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<1000 {
                group.addTask { try await client.command("INCR", counter) }
            }
            try await group.waitForAll()
        }
        #expect(try await client.command("GET", counter).text == "1000")
        try await client.command("DEL", key, counter)
        await client.close()
    }

    /// Replies are read only when the socket is readable, so a socket timeout never fires: until
    /// the fortieth session a command to a server that stopped answering waited for ever.
    @Test("a command whose reply does not come within the timeout fails, and the connection is dropped")
    func replyTimeout() async throws {
        let listener = try SilentListener()
        var configuration = RedisConfiguration(host: "127.0.0.1", port: listener.port)
        configuration.timeout = .seconds(1)
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        #expect(await TestHelpers.eventually(timeout: .seconds(5)) { client.isConnected })
        let error = await #expect(throws: RedisError.self) {
            try await withTimeout(.seconds(20)) { try await client.command("PING") }
        }
        #expect(error?.kind == .connection)
        await client.close()
    }

    /// `HandleThread.stop()` may be called twice at once: until the fifty-third session the
    /// drivers kept only the last stop asked for, and a caller of an earlier one in the same
    /// drain waited for ever (a review).
    @Test("closes asked for at once all end")
    func concurrentCloses() async throws {
        let client = RedisClient(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let subscriber = RedisSubscriber(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        #expect(await TestHelpers.eventually(timeout: .seconds(5)) { client.isConnected })
        try await withTimeout(.seconds(20)) {
            await withDiscardingTaskGroup { group in
                for _ in 0..<16 {
                    group.addTask { await client.close() }
                    group.addTask { await subscriber.close() }
                }
            }
        }
    }

    @Test("pub/sub delivers binary payloads on channels and patterns")
    func pubSub() async throws {
        let subscriber = RedisSubscriber(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let client = RedisClient(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let channel = TestEnvironment.uniqueName("test#channel")
        let patternBase = TestEnvironment.uniqueName("test#pattern")
        try await subscriber.subscribe(channels: [channel], patterns: ["\(patternBase)#*"])
        let payload: [UInt8] = [0x93, 0x00, 0xff, 0x0a, 0x1e]
        #expect(try await client.publish(channel: channel, message: payload) == 1)
        #expect(try await client.publish(channel: "\(patternBase)#room", message: [1]) == 1)

        let received = try await Self.messages(2, from: subscriber)
        #expect(received.count == 2)
        #expect(received.first == RedisPubSubMessage(channel: channel, pattern: nil, payload: payload))
        #expect(received.last == RedisPubSubMessage(channel: "\(patternBase)#room", pattern: "\(patternBase)#*", payload: [1]))
        await subscriber.close()
        await client.close()
    }

    @Test(
        "a subscriber keeps at most its buffer of unread payload bytes: the oldest wait, the newest and the too large are dropped"
    )
    func boundedBuffer() async throws {
        let subscriber = RedisSubscriber(configuration: TestEnvironment.redis, logger: TestEnvironment.logger, buffer: 10)
        let client = RedisClient(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let channel = TestEnvironment.uniqueName("test#bounded")
        try await subscriber.subscribe(channels: [channel])
        for index in 0..<50 { #expect(try await client.publish(channel: channel, message: [UInt8(index)]) == 1) }
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { subscriber.droppedMessages == 40 })
        let received = try await Self.messages(10, from: subscriber).map(\.payload)
        #expect(received == (0..<10).map { [UInt8($0)] })
        #expect(try await client.publish(channel: channel, message: [99]) == 1)
        let next = try await Self.messages(1, from: subscriber).first
        #expect(next?.payload == [99], "a message after the reader caught up is not dropped")
        // One message larger than the whole buffer is dropped even with nothing waiting.
        #expect(try await client.publish(channel: channel, message: Array(repeating: 7, count: 11)) == 1)
        #expect(try await client.publish(channel: channel, message: [100]) == 1)
        #expect(try await Self.messages(1, from: subscriber).first?.payload == [100])
        #expect(subscriber.droppedMessages == 41)
        let gap = try await withTimeout(.seconds(10)) {
            var gaps = subscriber.gaps.makeAsyncIterator()
            return await gaps.next() != nil
        }
        #expect(gap, "the drops were not told as a gap")
        await subscriber.close()
        await client.close()
    }

    @Test("a subscriber's skip drops the payloads it matches before they reach the stream")
    func skip() async throws {
        let subscriber = RedisSubscriber(configuration: TestEnvironment.redis, logger: TestEnvironment.logger) {
            $0.first == 0xAA
        }
        let client = RedisClient(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let channel = TestEnvironment.uniqueName("test#skip")
        try await subscriber.subscribe(channels: [channel])
        #expect(try await client.publish(channel: channel, message: [0xAA, 1]) == 1)
        #expect(try await client.publish(channel: channel, message: [0x01, 2]) == 1)
        let first = try await Self.messages(1, from: subscriber).first
        #expect(first?.payload == [0x01, 2])
        await subscriber.close()
        await client.close()
    }

    @Test("publishes without a reply, one by one and batched, go out in order, and a command after them gets its own reply")
    func publishesWithoutReply() async throws {
        let subscriber = RedisSubscriber(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let client = RedisClient(configuration: TestEnvironment.redis, logger: TestEnvironment.logger)
        let channel = TestEnvironment.uniqueName("test#unawaited")
        try await subscriber.subscribe(channels: [channel])
        #expect(await TestHelpers.eventually(timeout: .seconds(5)) { client.isConnected })
        let key = TestEnvironment.uniqueName("test:after")
        for round in 0..<5 {
            for index in 0..<50 { #expect(client.publishWithoutReply(channel: channel, message: [UInt8(round), UInt8(index)])) }
            // The rest as one batch, which keeps its place after them.
            #expect(client.publishWithoutReply((50..<100).map { (channel, [UInt8(round), UInt8($0)]) }))
            // The replies to the publishes come first on the connection; this command must get
            // its own.
            #expect(try await client.command("INCR", key).integer == Int64(round + 1))
        }
        let received = try await Self.messages(500, from: subscriber).map(\.payload)
        var expected: [[UInt8]] = []
        for round in 0..<5 {
            for index in 0..<100 { expected.append([UInt8(round), UInt8(index)]) }
        }
        #expect(received == expected)
        try await client.command("DEL", key)
        await subscriber.close()
        await client.close()
    }

    /// The first `count` messages `subscriber` hands out (fewer if its stream ends), waiting at
    /// most 10 s.
    private static func messages(_ count: Int, from subscriber: RedisSubscriber) async throws -> [RedisPubSubMessage] {
        try await withTimeout(.seconds(10)) {
            var received: [RedisPubSubMessage] = []
            for await message in subscriber.messages {
                received.append(message)
                if received.count == count { break }
            }
            return received
        }
    }

    /// A listening socket that never accepts: the kernel completes connections and buffers what
    /// they send until its buffers are full, after which a write waits and times out.
    @Test("a subscribe whose write to Redis fails is never forgotten: it fails at close instead of waiting forever")
    func failedWriteSubscribeEnds() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let configuration = Self.quickToReconnect(to: listener, timeout: .milliseconds(200))
        let subscriber = RedisSubscriber(configuration: configuration, logger: TestEnvironment.logger)
        // Connecting with nothing to subscribe writes nothing, so this connection works.
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { subscriber.isConnected })
        // Larger than the socket buffers of both ends: the write cannot finish.
        let channel = String(repeating: "x", count: 64 << 20)
        let outcome = Outcome()
        Task {
            do {
                try await subscriber.subscribe(channels: [channel])
                outcome.end(nil)
            } catch {
                outcome.end(error)
            }
        }
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { !subscriber.isConnected })
        // Neither the close nor the subscribe is awaited directly: a promise that is never
        // completed would hang the test instead of failing it.
        let closing = Task { await subscriber.close() }
        let ended = await TestHelpers.eventually(timeout: .seconds(10)) { outcome.ended }
        #expect(ended, "the subscribe never ended")
        #expect(outcome.error as? RedisError == RedisError(.shutdown, "the subscriber is closed"))
        if ended { await closing.value }
    }
}

extension RedisTests {
    @Test("a server that accepts and closes at once is connected to again after a growing wait, not once per command")
    func reconnectsWithBackoffToAServerThatCloses() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        var configuration = RedisConfiguration(host: "127.0.0.1", port: listener.port)
        configuration.reconnectInitialDelay = .milliseconds(100)
        configuration.reconnectMaximumDelay = .milliseconds(400)
        let counting = Task { await listener.acceptAndClose(for: .seconds(2)) }
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        let sending = Task {
            while !Task.isCancelled {
                _ = try? await client.command("PING")
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        let connections = await counting.value
        sending.cancel()
        await client.close()
        // About 10 with the waits (50 to 400 ms each); hundreds without.
        #expect(connections < 25, "\(connections) connections in 2 s")
    }

    @Test("an error that answers a new connection's resubscription ends it, and the next connection subscribes again")
    func refusedResubscriptionKeepsTheNames() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let configuration = Self.quickToReconnect(to: listener, timeout: .seconds(5))
        let pattern = "socket.io#/#*"
        let lastConnection = Received()
        // 1: confirms the PSUBSCRIBE, then closes. 2: answers it as a Redis at its client limit
        // does, and closes. 3: records what the subscriber asks.
        let server = Task {
            await listener.serve(3) { index, connection in
                let asked = SilentListener.read(connection, until: pattern)
                switch index {
                case 0:
                    SilentListener.write(connection, "*3\r\n$10\r\npsubscribe\r\n$\(pattern.utf8.count)\r\n\(pattern)\r\n:1\r\n")
                case 1: SilentListener.write(connection, "-ERR max number of clients reached\r\n")
                default: lastConnection.text.withLock { $0 = asked }
                }
                usleep(100_000)
            }
        }
        let subscriber = RedisSubscriber(configuration: configuration, logger: TestEnvironment.logger)
        try await subscriber.subscribe(patterns: [pattern])
        await server.value
        let asked = lastConnection.text.withLock { $0 }
        #expect(asked.contains("PSUBSCRIBE"), "the third connection subscribed to nothing")
        #expect(asked.contains(pattern))
        await subscriber.close()
    }
}

extension RedisTests {
    @Test("a subscription Redis refused in part fails, even when the connection is lost before the rest is confirmed")
    func partlyRefusedSubscriptionFailsAcrossAReconnect() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let configuration = Self.quickToReconnect(to: listener, timeout: .seconds(5))
        let pattern = "socket.io#/#*"
        // 1: refuses the SUBSCRIBE as an ACL does, and closes before answering the PSUBSCRIBE.
        // 2: confirms the resubscription of the pattern and stays a while. Each waits up to 30 s
        // for what it answers (a single read gives up after 2 s: on a loaded machine the first
        // then answered before the subscribe came, and the test took the wrong path).
        let server = Task {
            await listener.serve(2) { index, connection in
                var asked = ""
                let patience = ContinuousClock.now + .seconds(30)
                while !asked.contains(pattern), ContinuousClock.now < patience {
                    asked += SilentListener.read(connection, until: pattern)
                }
                if index == 0 {
                    SilentListener.write(connection, "-NOPERM this user has no permissions to access the channel\r\n")
                    usleep(100_000)
                } else {
                    SilentListener.write(
                        connection, "*3\r\n$10\r\npsubscribe\r\n$\(pattern.utf8.count)\r\n\(pattern)\r\n:1\r\n")
                    usleep(1_000_000)
                }
            }
        }
        let subscriber = RedisSubscriber(configuration: configuration, logger: TestEnvironment.logger)
        // Connected with nothing to subscribe (which writes nothing), so that the subscribe below
        // is not the resubscription of a new connection.
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { subscriber.isConnected })
        let outcome = Outcome()
        Task {
            do {
                try await subscriber.subscribe(channels: ["refused"], patterns: [pattern])
                outcome.end(nil)
            } catch {
                outcome.end(error)
            }
        }
        let ended = await TestHelpers.eventually(timeout: .seconds(30)) { outcome.ended }
        #expect(ended, "the subscribe never ended")
        #expect((outcome.error as? RedisError)?.kind == .server, "\(String(describing: outcome.error))")
        await server.value
        await subscriber.close()
    }

    @Test("a connection lost while subscribed is told as a gap once the next one has subscribed again")
    func reconnectIsAGap() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let configuration = Self.quickToReconnect(to: listener, timeout: .seconds(5))
        let pattern = "socket.io#/#*"
        let confirmation = "*3\r\n$10\r\npsubscribe\r\n$\(pattern.utf8.count)\r\n\(pattern)\r\n:1\r\n"
        let resubscribed = Received()
        // 1: confirms the PSUBSCRIBE, then closes. 2: confirms it again and stays.
        let server = Task {
            await listener.serve(2) { index, connection in
                _ = SilentListener.read(connection, until: pattern)
                // Noted before the confirmation goes: the subscriber may tell the gap at once.
                if index == 1 { resubscribed.text.withLock { $0 = "yes" } }
                SilentListener.write(connection, confirmation)
                if index == 1 {
                    usleep(1_000_000)
                } else {
                    usleep(100_000)
                }
            }
        }
        let subscriber = RedisSubscriber(configuration: configuration, logger: TestEnvironment.logger)
        try await subscriber.subscribe(patterns: [pattern])
        let gap = try await withTimeout(.seconds(10)) {
            var gaps = subscriber.gaps.makeAsyncIterator()
            return await gaps.next() != nil
        }
        #expect(gap)
        #expect(resubscribed.text.withLock { $0 } == "yes", "the gap was told before the new connection subscribed")
        await server.value
        await subscriber.close()
    }
}

extension RedisTests {
    @Test("a publish sent without waiting that Redis refuses, or whose connection is lost before its reply, is told")
    func lostPublishesAreTold() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let configuration = Self.quickToReconnect(to: listener, timeout: .seconds(5))
        // 1: refuses the first PUBLISH, then closes on the second without answering it.
        let server = Task {
            await listener.serve(1) { _, connection in
                _ = SilentListener.read(connection, until: "first")
                SilentListener.write(connection, "-NOPERM no permissions\r\n")
                _ = SilentListener.read(connection, until: "second")
            }
        }
        let client = RedisClient(configuration: configuration, logger: TestEnvironment.logger)
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { client.isConnected })
        let told = Counted()
        let listening = Task {
            for await _ in client.lostPublishes { told.count.add(1, ordering: .relaxed) }
        }
        #expect(client.publishWithoutReply(channel: "c", message: Array("first".utf8)))
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { told.count.load(ordering: .relaxed) == 1 })
        #expect(client.publishWithoutReply(channel: "c", message: Array("second".utf8)))
        #expect(await TestHelpers.eventually(timeout: .seconds(10)) { told.count.load(ordering: .relaxed) == 2 })
        await server.value
        await client.close()
        await listening.value
    }
}

/// How many times something was told, counted by one task and read by the test.
private final class Counted: Sendable {
    let count = Atomic(0)
}

extension RedisTests {
    /// A configuration for a test server on `listener`: commands wait `timeout`, reconnects 10
    /// to 50 ms.
    static func quickToReconnect(to listener: SilentListener, timeout: Duration) -> RedisConfiguration {
        var configuration = RedisConfiguration(host: "127.0.0.1", port: listener.port)
        configuration.timeout = timeout
        configuration.reconnectInitialDelay = .milliseconds(10)
        configuration.reconnectMaximumDelay = .milliseconds(50)
        return configuration
    }
}

/// What a scripted server's connection received, written on its thread and read by the test.
private final class Received: Sendable {
    let text = Mutex("")
}

/// How a call ended, written by the task that made it and read by the test.
private final class Outcome: Sendable {
    private let state = Mutex<(ended: Bool, error: (any Error)?)>((false, nil))

    var ended: Bool { self.state.withLock { $0.ended } }
    var error: (any Error)? { self.state.withLock { $0.error } }

    func end(_ error: (any Error)?) {
        self.state.withLock { $0 = (true, error) }
    }
}
