import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import NIOPosix
import ServiceLifecycle
import SocketIOProtocol

/// Consumes server-to-client pushes (`{"rooms": [...], "except": [...], "event": "...",
/// "args": [...], "redelivery": bool}`) from the gateways' shared queue and fans each out; a push that cannot be
/// understood is rejected with a log line, never retried forever. Pushes published in the same
/// moment may come as one ``MessageBatch``; an item of it that cannot be understood is logged
/// and skipped, and the rest of the batch still goes out.
struct PushConsumer: Service {
    let amqp: AMQPConnection
    let fanOut: RedisFanOut
    let prefetch: UInt16
    let logger: Logger

    /// The queue's declaration: ``GatewayPushes/sharedQueue``, which delivery declares too.
    static func topology(queueArguments: [String: AMQPFieldValue]) -> AMQPTopology {
        AMQPTopology(declaring: GatewayPushes.sharedQueue, queueArguments: queueArguments)
    }

    func run() async throws {
        let consumer = self.amqp.consume(queue: GatewayPushes.queue, prefetch: self.prefetch)
        try await consumer.runUntilShutdown {
            var stretch = BusyStretch()
            for await delivery in consumer {
                await stretch.pauseIfLong()
                defer { stretch.done() }
                let messageID = delivery.properties.messageID ?? "-"
                let batched = delivery.properties.type == GatewayPushes.batchType
                let body = delivery.body
                let read: (emissions: [RedisFanOut.Emission], skipped: Int)?
                if body.count >= Self.offloadedDecodingSize {
                    do {
                        read = try await NIOThreadPool.singleton.runIfActive { Self.emissions(in: body, batched: batched) }
                    } catch {
                        read = Self.emissions(in: body, batched: batched)  // the pool is not running
                    }
                } else {
                    read = Self.emissions(in: body, batched: batched)
                }
                guard let (emissions, skipped) = read else {
                    self.logger.error(
                        batched ? "malformed push batch rejected" : "undecodable push rejected",
                        metadata: ["message_id": "\(messageID)"])
                    delivery.reject(requeue: false)
                    continue
                }
                if skipped > 0 {
                    self.logger.error(
                        "undecodable push in a batch skipped", metadata: ["message_id": "\(messageID)", "pushes": "\(skipped)"])
                }
                await self.fanOut.emit(emissions)
                delivery.ack()
            }
        }
    }

    /// Deliveries at least this big are decoded on NIO's thread pool. The consumer runs on an
    /// event loop, whose I/O waits while it works: until the forty-ninth session a backlog of a
    /// 256-member group's large events (65,536 pushes of 24 KB, 4,000 escaped control
    /// characters each) kept one loop parsing for minutes, and the listening socket on it
    /// accepted no connection meanwhile (`/healthz` and every new client timed out).
    static let offloadedDecodingSize = 64 * 1024

    /// The emissions of a delivery (a push, or a ``MessageBatch`` of them) and how many of a
    /// batch's pushes could not be read; nil when the delivery cannot be read at all.
    static func emissions(in body: Data, batched: Bool) -> (emissions: [RedisFanOut.Emission], skipped: Int)? {
        guard batched else { return Self.decode(body).map { ([$0], 0) } }
        guard let batch = try? MessageBatch(decoding: body) else { return nil }
        var emissions: [RedisFanOut.Emission] = []
        emissions.reserveCapacity(batch.items.count)
        for item in batch.items {
            if let emission = Self.decode(item.body) { emissions.append(emission) }
        }
        return (emissions, batch.items.count - emissions.count)
    }

    /// A push as an emission (nil when it cannot be understood); `argumentsJSON` is the text of
    /// its `args` array as it came, for this gateway's sockets (no need to write it again). A
    /// push names its rooms: no rooms would be every socket of every gateway (until the
    /// forty-third session `"rooms": [123]` came to that, its non-string room dropped).
    static func decode(_ body: Data) -> RedisFanOut.Emission? {
        guard let text = String(data: body, encoding: .utf8),
            let (value, argumentsText) = try? JSONValue.parse(text, keepingTextOf: "args"),
            case .string(let event)? = value["event"], case .array(let roomValues)? = value["rooms"]
        else { return nil }
        let rooms = roomValues.compactMap(\.stringValue)
        guard !rooms.isEmpty, rooms.count == roomValues.count else { return nil }
        var arguments: [JSONValue] = []
        var argumentsJSON: String?
        if case .array(let items)? = value["args"] {
            arguments = items
            argumentsJSON = argumentsText
        }
        let except: [JSONValue] = if case .array(let items)? = value["except"] { items } else { [] }
        return RedisFanOut.Emission(
            event: event, arguments: arguments, argumentsJSON: argumentsJSON, rooms: rooms,
            except: except.compactMap(\.stringValue), flags: value["redelivery"] == .bool(true) ? ["redelivery": true] : [:])
    }
}
