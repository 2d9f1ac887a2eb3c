import Foundation
import MessengerContracts

/// Several messages for one destination (RPC requests, RPC replies, gateway pushes), carried in
/// one AMQP message.
///
/// Under load, many callers send requests to the same service in the same moment, a service
/// answers many of them to the same reply queue, and delivery pushes many events to the
/// gateways. The connection's thread publishes what its callers queued while it was busy:
/// messages of one round that may travel together (``AMQPMessage/batchType``) and share their
/// destination go out as one message of this format instead of one message each (see
/// ``coalesce(_:)``). Each item keeps its own correlation id, type and body, and its consumer
/// handles each on its own. Alone, a message is still a plain message, so a quiet system sends
/// exactly what it did before batches, and nothing ever waits for a batch to fill.
///
/// Body: a format byte (1), then per item its correlation id and type (each a 16-bit big-endian
/// length and UTF-8 bytes; the correlation id is empty for messages without one) and its body
/// (a 32-bit big-endian length and the bytes).
public struct MessageBatch: Sendable, Equatable {
    /// One message of the batch.
    public struct Item: Sendable, Equatable {
        public var correlationID: String
        public var type: String
        public var body: Data

        public init(correlationID: String, type: String, body: Data) {
            self.correlationID = correlationID
            self.type = type
            self.body = body
        }
    }

    /// The AMQP type of a message carrying RPC requests.
    public static let requestType = "rpc.batch.v1"
    /// The AMQP type of a message carrying RPC replies.
    public static let replyType = "rpc.batch.v1.reply"
    public static let contentType = "application/vnd.messenger.message-batch"
    /// At most this many items go in one message, so that one message never holds more work than
    /// a consumer's fair share.
    static let maximumItems = 64
    /// And at most this many bytes of bodies.
    static let maximumBytes = 1 << 20
    private static let format: UInt8 = 1

    public var items: [Item]

    public init(items: [Item]) {
        self.items = items
    }

    /// Reads a batch's body; throws ``AMQPError/Code/protocolError`` for anything malformed.
    public init(decoding body: Data) throws {
        let malformed = AMQPError(.protocolError, "malformed RPC batch")
        var items: [Item] = []
        try body.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var offset = 0
            func read(_ count: Int) throws -> UnsafeRawBufferPointer {
                guard count <= bytes.count - offset else { throw malformed }
                defer { offset += count }
                return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + count])
            }
            func length(_ width: Int) throws -> Int {
                try read(width).reduce(0) { $0 << 8 | Int($1) }
            }
            func text() throws -> String {
                guard let text = String(validating: try read(try length(2)), as: UTF8.self) else { throw malformed }
                return text
            }
            guard try read(1).first == Self.format else { throw malformed }
            while offset < bytes.count {
                let correlationID = try text()
                let type = try text()
                let body = Data(try read(try length(4)))
                items.append(Item(correlationID: correlationID, type: type, body: body))
            }
        }
        guard !items.isEmpty else { throw malformed }
        self.items = items
    }

    /// The batch's body.
    public func encoded() -> Data {
        var data = Data(
            capacity: 1 + self.items.reduce(0) { $0 + 8 + $1.correlationID.utf8.count + $1.type.utf8.count + $1.body.count })
        data.append(Self.format)
        func append(length: Int, width: Int) {
            for shift in stride(from: (width - 1) * 8, through: 0, by: -8) {
                data.append(UInt8(truncatingIfNeeded: length >> shift))
            }
        }
        for item in self.items {
            for text in [item.correlationID, item.type] {
                append(length: text.utf8.count, width: 2)
                data.append(contentsOf: text.utf8)
            }
            append(length: item.body.count, width: 4)
            data.append(item.body)
        }
        return data
    }
}

extension MessageBatch {
    /// The messages of one round of publishes, with those that may travel together
    /// (``AMQPMessage/batchType``, the same destination, reply queue, expiration and flags,
    /// and deadlines within ``maximumDeadlineSpread`` of each other) merged into batch
    /// messages. Everything else keeps its order; a merged message takes the place of the first
    /// of its items and completes all of their promises.
    static func coalesce(_ publishes: [PendingPublish]) -> [PendingPublish] {
        guard publishes.count > 1 else { return publishes }
        var open: [BatchKey: Int] = [:]
        var output: [PendingPublish] = []
        var groups: [Int: Group] = [:]
        output.reserveCapacity(publishes.count)
        for pending in publishes {
            guard let key = BatchKey(pending.message) else {
                output.append(pending)
                continue
            }
            let bytes = pending.message.body.count
            if let index = open[key], let group = groups[index], group.members.count < Self.maximumItems,
                group.bytes + bytes <= Self.maximumBytes, group.admits(pending.deadline)
            {
                groups[index]!.add(pending, bytes: bytes)
            } else {
                open[key] = output.count
                groups[output.count] = Group(pending, bytes: bytes)
                output.append(pending)
            }
        }
        for (index, group) in groups where group.members.count > 1 {
            output[index] = Self.merged(group.members)
        }
        return output
    }

    /// How far apart the deadlines of a batch's members may be. The batch is sent with the
    /// latest, as its `expiration`, and its server gives every member that: with members queued
    /// seconds apart (a publishing thread held up by a reconnect or the broker's flow control),
    /// the earliest one's handler had up to a whole timeout more than its caller waited, and
    /// wrote after its caller was told `unavailable` (until the fifty-third session; a review).
    /// Within this, the stretch is within the clock disagreement a server allows for anyway
    /// (``RPCServer/clockAllowance``).
    static let maximumDeadlineSpread = RPCServer.clockAllowance

    /// Messages gathered to travel as one, with the span of their deadlines.
    private struct Group {
        var members: [PendingPublish]
        var bytes: Int
        /// The earliest and latest deadline; nil when the members have none.
        var deadlines: (earliest: ContinuousClock.Instant, latest: ContinuousClock.Instant)?

        init(_ first: PendingPublish, bytes: Int) {
            self.members = [first]
            self.bytes = bytes
            self.deadlines = first.deadline.map { ($0, $0) }
        }

        /// Whether a message with `deadline` may join: both none, or the group's deadlines
        /// with it within ``maximumDeadlineSpread``.
        func admits(_ deadline: ContinuousClock.Instant?) -> Bool {
            switch (self.deadlines, deadline) {
            case (nil, nil): true
            case (let span?, let deadline?):
                max(span.latest, deadline) - min(span.earliest, deadline) <= MessageBatch.maximumDeadlineSpread
            default: false
            }
        }

        mutating func add(_ pending: PendingPublish, bytes: Int) {
            self.members.append(pending)
            self.bytes += bytes
            if let span = self.deadlines, let deadline = pending.deadline {
                self.deadlines = (min(span.earliest, deadline), max(span.latest, deadline))
            }
        }
    }

    private static func merged(_ group: [PendingPublish]) -> PendingPublish {
        let first = group[0].message
        let batch = MessageBatch(
            items: group.map {
                Item(
                    correlationID: $0.message.properties.correlationID ?? "", type: $0.message.properties.type ?? "",
                    body: $0.message.body)
            })
        let message = AMQPMessage(
            exchange: first.exchange, routingKey: first.routingKey, body: batch.encoded(),
            properties: AMQPProperties(
                contentType: Self.contentType, messageID: UUID.random().lowercasedText, replyTo: first.properties.replyTo,
                type: first.batchType, expiration: first.properties.expiration, persistent: first.properties.persistent),
            mandatory: first.mandatory)
        // Worth sending while any of its callers still waits.
        let deadlines = group.map(\.deadline)
        let deadline = deadlines.contains(nil) ? nil : deadlines.compactMap { $0 }.max()
        return PendingPublish(message: message, promises: group.flatMap(\.promises), deadline: deadline)
    }

    /// What messages must share to travel in one batch.
    private struct BatchKey: Hashable {
        var batchType: String
        var exchange: String
        var routingKey: String
        var replyTo: String?
        var expiration: String?
        var persistent: Bool
        var mandatory: Bool

        init?(_ message: AMQPMessage) {
            guard let batchType = message.batchType else { return nil }
            self.batchType = batchType
            self.exchange = message.exchange
            self.routingKey = message.routingKey
            self.replyTo = message.properties.replyTo
            self.expiration = message.properties.expiration
            self.persistent = message.properties.persistent
            self.mandatory = message.mandatory
        }
    }
}
