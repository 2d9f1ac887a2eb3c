import Logging
import MessengerRedis
import ServiceLifecycle
import SocketIOProtocol
import SocketIOServer
import ThreadedIO

/// Emits to rooms across every gateway replica: delivers to this gateway's sockets at once and
/// publishes the event in the Socket.IO Redis adapter format, so every other gateway (and any
/// program that speaks `@socket.io/redis-emitter`) reaches the sockets it holds. Messages a
/// gateway published itself are skipped when they come back (by the subscriber's thread, see
/// `buildServices`, and again here by their uid).
struct RedisFanOut: Service {
    let uid: String
    let redis: RedisClient
    let subscriber: RedisSubscriber
    let local: LocalDelivery
    let logger: Logger

    /// One event for the sockets in some rooms. `flags` travel with it (`redelivery` marks a
    /// durable event pushed again). `argumentsJSON`, the arguments' JSON text when the caller
    /// has it, goes to this gateway's sockets as it is.
    struct Emission: Sendable {
        var event: String
        var arguments: [JSONValue]
        var argumentsJSON: String? = nil
        var rooms: [String]
        var except: [String] = []
        var flags: [String: Bool] = [:]
    }

    /// Sends `event` to the sockets in `rooms`, here and on every other gateway.
    func emit(_ event: String, _ arguments: [JSONValue], rooms: [String]) async {
        await self.emit([Emission(event: event, arguments: arguments, rooms: rooms)])
    }

    /// Sends each emission, in order, to this gateway's sockets and then, all together, to
    /// every other gateway: their Redis publishes reach the connection's thread as one pipeline
    /// (a batch of pushes wakes it once, not once per push).
    func emit(_ emissions: [Emission]) async {
        var published: [(channel: String, message: [UInt8])] = []
        published.reserveCapacity(emissions.count)
        for emission in emissions {
            await self.local.emit(
                emission.event, emission.arguments, argumentsJSON: emission.argumentsJSON, rooms: emission.rooms,
                except: emission.except, flags: emission.flags)
            let message = EmitterMessage(
                uid: self.uid, event: emission.event, arguments: emission.arguments, rooms: emission.rooms,
                except: emission.except, flags: emission.flags)
            published.append((message.channel, message.encoded()))
        }
        // Not awaited: the next push need not wait for Redis's reply (publishes keep their order
        // on the one connection). Sockets on other gateways that miss a live event get it again
        // through the delivery service's retries and catch-up.
        if !self.redis.publishWithoutReply(published) {
            self.logger.warning(
                "fan-out publish refused: the Redis client is closed", metadata: ["events": "\(emissions.count)"])
        }
    }

    /// The channel on which a gateway says that some of its publishes may not have reached
    /// Redis, with its uid as the payload: every other gateway then has its sockets look for the
    /// events they missed. Outside `socket.io#…`, so that no Socket.IO server takes it for an
    /// emit.
    static let resyncChannel = "messenger#gateway#resync"

    /// What this gateway publishes on ``resyncChannel``: its uid.
    private var resyncPayload: [UInt8] { Array(self.uid.utf8) }

    /// Delivers what other gateways and emitters publish, until graceful shutdown. After a gap
    /// in what this gateway's subscriber got, or when another gateway says some of its
    /// publishes were lost, every socket looks for the durable events it missed.
    func run() async throws {
        try await self.subscriber.subscribe(channels: [Self.resyncChannel], patterns: [EmitterMessage.pattern()])
        let (sweeps, sweep) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        // Sockets may connect before the subscription is confirmed (the engine takes them once
        // the revoked sessions are known, and Redis may be away at start): what other gateways
        // published before it never reached them, and no gap is told for a first subscription.
        // One sweep once subscribed (until the fifty-third session there was none; a review).
        sweep.yield()
        let ownResync = self.resyncPayload
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { for await _ in self.subscriber.gaps { sweep.yield() } }
                group.addTask { await self.lookForMissedEvents(on: sweeps) }
                group.addTask { await self.announceLostPublishes() }
                for await published in self.subscriber.messages {
                    if published.channel == Self.resyncChannel {
                        if published.payload != ownResync { sweep.yield() }
                        continue
                    }
                    guard let message = EmitterMessage(decoding: published.payload) else {
                        self.logger.debug(
                            "ignoring a message not in the emitter format", metadata: ["channel": "\(published.channel)"])
                        continue
                    }
                    guard message.uid != self.uid, message.namespace == "/" else { continue }
                    await self.local.emit(
                        message.event, message.arguments, rooms: message.rooms, except: message.except,
                        flags: message.flags)
                }
                group.cancelAll()
            }
        }
    }

    /// Pub/sub keeps nothing for a subscriber that was away: the durable events other gateways
    /// published meanwhile are in delivery's log, and the sockets fetch them from there. Other
    /// emits (`typing`, presence) are not kept anywhere and stay missed.
    ///
    /// Sweeps start at least ``gapSweepInterval`` apart (the requests made meanwhile make one
    /// more): a subscriber dropping messages under a sustained load tells a gap at each drop,
    /// and a sweep asks delivery once per socket.
    private func lookForMissedEvents(on sweeps: AsyncStream<Void>) async {
        for await _ in sweeps {
            let since = ContinuousClock.now
            self.logger.info("fan-out may have missed pushes: the sockets look for events they missed")
            await self.local.streams.lookForMissedEvents(storedBefore: since)
            self.logger.debug(
                "sockets looked for missed events", metadata: ["took": "\(ContinuousClock.now - since)"])
            try? await Task.sleep(until: since + Self.gapSweepInterval)
        }
    }

    static let gapSweepInterval: Duration = .seconds(5)

    /// Publishes of this gateway that Redis may not have taken (``RedisClient/lostPublishes``)
    /// reached no other gateway, whose subscriber saw no gap: once Redis takes a publish again,
    /// they are told (``resyncChannel``). Tried every 200 ms to 2 s until it goes.
    private func announceLostPublishes() async {
        for await _ in self.redis.lostPublishes {
            var backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(2))
            while !Task.isCancelled {
                do {
                    try await self.redis.publish(channel: Self.resyncChannel, message: self.resyncPayload)
                    self.logger.info("publishes may have been lost: the other gateways were told to look for missed events")
                    break
                } catch {
                    try? await Task.sleep(for: backoff.next())
                }
            }
        }
    }
}
