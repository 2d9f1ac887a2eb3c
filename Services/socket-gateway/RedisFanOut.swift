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

    /// Sends `event` to the sockets in `rooms`, here and on every other gateway. `flags` travel
    /// with it (`redelivery` marks a durable event pushed again). `argumentsJSON`, the
    /// arguments' JSON text when the caller has it, goes to this gateway's sockets as it is.
    func emit(
        _ event: String, _ arguments: [JSONValue], argumentsJSON: String? = nil, rooms: [String], except: [String] = [],
        flags: [String: Bool] = [:]
    ) async {
        await self.local.emit(event, arguments, argumentsJSON: argumentsJSON, rooms: rooms, except: except, flags: flags)
        let message = EmitterMessage(
            uid: self.uid, event: event, arguments: arguments, rooms: rooms, except: except, flags: flags)
        // Not awaited: the next push need not wait for Redis's reply (publishes keep their order
        // on the one connection). Sockets on other gateways that miss a live event get it again
        // through the delivery service's retries and catch-up.
        if !self.redis.publishWithoutReply(channel: message.channel, message: message.encoded()) {
            self.logger.warning("fan-out publish refused: the Redis client is closed", metadata: ["event": "\(event)"])
        }
    }

    /// Delivers what other gateways and emitters publish, until graceful shutdown.
    func run() async throws {
        try await self.subscriber.subscribe(patterns: [EmitterMessage.pattern()])
        await cancelWhenGracefulShutdown {
            for await published in self.subscriber.messages {
                guard let message = EmitterMessage(decoding: published.payload) else {
                    self.logger.debug(
                        "ignoring a message not in the emitter format", metadata: ["channel": "\(published.channel)"])
                    continue
                }
                guard message.uid != self.uid, message.namespace == "/" else { continue }
                await self.local.emit(
                    message.event, message.arguments, rooms: message.rooms, except: message.except, flags: message.flags)
            }
        }
    }
}
