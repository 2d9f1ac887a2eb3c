import Foundation

/// A value in an AMQP field table (message headers, queue arguments).
public indirect enum AMQPFieldValue: Hashable, Sendable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case double(Double)
    case timestamp(UInt64)
    case bytes([UInt8])
    case array([AMQPFieldValue])
    case table([String: AMQPFieldValue])
    case void

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var intValue: Int64? {
        if case .int(let value) = self { return value }
        return nil
    }
}

extension AMQPFieldValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// The `basic` properties of a message. Publishing always uses persistent delivery mode unless
/// `persistent` is set to false (RPC requests and replies only).
public struct AMQPProperties: Hashable, Sendable {
    public var contentType: String?
    public var messageID: String?
    public var correlationID: String?
    public var replyTo: String?
    public var type: String?
    /// Seconds since 1970, as AMQP carries it.
    public var timestamp: UInt64?
    /// Per-message TTL in milliseconds.
    public var expiration: String?
    public var headers: [String: AMQPFieldValue] = [:]
    public var persistent: Bool = true

    public init(
        contentType: String? = "application/json", messageID: String? = nil, correlationID: String? = nil,
        replyTo: String? = nil, type: String? = nil, timestamp: UInt64? = nil, expiration: String? = nil,
        headers: [String: AMQPFieldValue] = [:], persistent: Bool = true
    ) {
        self.contentType = contentType
        self.messageID = messageID
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.type = type
        self.timestamp = timestamp
        self.expiration = expiration
        self.headers = headers
        self.persistent = persistent
    }
}

extension AMQPProperties {
    /// The header that carries when a message with a deadline was published, in milliseconds
    /// since 1970 by the publisher's clock: an RPC server counts the request's wait in its queue
    /// from it (``RPCServer``).
    public static let sentAtHeader = "x-sent-at"

    /// This machine's wall clock, in milliseconds since 1970.
    static func wallClockMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}

/// A message to publish.
public struct AMQPMessage: Sendable {
    public var exchange: String
    public var routingKey: String
    public var body: Data
    public var properties: AMQPProperties
    /// Ask the broker to return the message when no queue matches (the publish then fails with
    /// ``AMQPError/Code/unroutable``).
    public var mandatory: Bool
    /// Set on messages that may travel together (RPC requests and replies, gateway pushes): those
    /// with the same destination that are published in the same moment may go as one
    /// ``MessageBatch`` message of this AMQP type, which keeps each one's correlation id, type and
    /// body (and nothing else of their properties). Their consumer must read such batches.
    public var batchType: String?

    public init(
        exchange: String, routingKey: String, body: Data, properties: AMQPProperties = .init(), mandatory: Bool = false
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

extension AMQPMessage {
    /// This message with ``batchType`` set.
    public func batched(as batchType: String) -> AMQPMessage {
        var message = self
        message.batchType = batchType
        return message
    }
}
