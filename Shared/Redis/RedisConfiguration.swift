/// Where Redis listens (`REDIS_HOST`, `REDIS_PORT`, optional `REDIS_PASSWORD`).
public struct RedisConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var password: String?
    /// Socket connect timeout, and the longest a command may wait for its reply.
    public var timeout: Duration = .seconds(5)
    public var reconnectInitialDelay: Duration = .milliseconds(50)
    public var reconnectMaximumDelay: Duration = .seconds(2)

    public init(host: String, port: Int, password: String? = nil) {
        self.host = host
        self.port = port
        self.password = password
    }
}

/// An error from the Redis layer.
public struct RedisError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Not connected, or the connection broke while the command was under way.
        case connection
        /// Redis answered with an error reply.
        case server
        /// The client is shut down.
        case shutdown
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "Redis \(self.kind.rawValue): \(self.message)" }
}

/// A reply from Redis.
public indirect enum RedisValue: Hashable, Sendable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case array([RedisValue])
    case null

    /// The reply as text, for bulk and status replies.
    public var text: String? {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let status): status
        default: nil
        }
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }
}
