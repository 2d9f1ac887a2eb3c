import Logging
import MessengerRedis
import ServiceLifecycle
import SocketIOProtocol
import SocketIOServer

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

    /// Delivers what other gateways and emitters publish, until graceful shutdown; after a gap
    /// in what the subscriber got, every socket looks for the durable events it missed.
    func run() async throws {
        try await self.subscriber.subscribe(patterns: [EmitterMessage.pattern()])
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.lookForMissedEventsAfterGaps() }
                for await published in self.subscriber.messages {
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
    /// Sweeps start at least ``gapSweepInterval`` apart (the gaps told meanwhile make one
    /// more): a subscriber dropping messages under a sustained load tells a gap at each drop,
    /// and a sweep asks delivery once per socket.
    private func lookForMissedEventsAfterGaps() async {
        for await _ in self.subscriber.gaps {
            let since = ContinuousClock.now
            self.logger.info("fan-out may have missed pushes: the sockets look for events they missed")
            await self.local.streams.lookForMissedEvents(storedBefore: since)
            self.logger.debug(
                "sockets looked for missed events", metadata: ["took": "\(ContinuousClock.now - since)"])
            try? await Task.sleep(until: since + Self.gapSweepInterval)
        }
    }

    static let gapSweepInterval: Duration = .seconds(5)
}
