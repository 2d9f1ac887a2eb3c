import Foundation

/// Where and how to connect to RabbitMQ, read once from `RABBITMQ_URI`
/// (`amqp://user:password@host:port/vhost`).
public struct AMQPConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var virtualHost: String
    /// Seconds; 0 turns heartbeats off.
    public var heartbeat: Int = 30
    /// Shown by `rabbitmqctl list_connections client_properties`.
    public var connectionName: String = "messenger"
    /// Published messages in flight before `publish` waits for confirms.
    public var confirmWindow: Int = 1000
    /// The most frame bytes the connection negotiates.
    public var frameMax: Int = 131_072
    /// Socket connect and login timeout.
    public var connectTimeout: Duration = .seconds(5)
    /// First delay before reconnecting; doubles per failure up to `reconnectMaximumDelay`.
    public var reconnectInitialDelay: Duration = .milliseconds(100)
    public var reconnectMaximumDelay: Duration = .seconds(5)
    /// The broker's `max_message_size` (RabbitMQ 3's default, 128 MiB). A bigger message is
    /// refused before it is sent: the broker would close the publishing channel for it, and the
    /// message, published again after every reconnect, would close it again for ever.
    public var maximumMessageSize: Int = 128 * 1024 * 1024
    /// Whether messages that may travel together are published as ``MessageBatch`` messages.
    /// Turned off while a consumer that cannot read batches may still run (a rolling upgrade).
    public var sendsBatches = true
    /// How long a connection's thread may stay in one stretch of library calls before its socket
    /// is shut down and it reconnects (``SocketBreaker``): twice the heartbeat, at least 10 s
    /// (60 s without heartbeats). A frozen broker or a silent dead link otherwise held a publish
    /// for ever.
    public var stalledCallLimit: Duration?

    /// ``stalledCallLimit``, or its default.
    var stallLimit: Duration {
        self.stalledCallLimit ?? (self.heartbeat > 0 ? max(.seconds(2 * self.heartbeat), .seconds(10)) : .seconds(60))
    }

    public init(host: String, port: Int = 5672, user: String = "guest", password: String = "guest", virtualHost: String = "/") {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.virtualHost = virtualHost
    }

    /// Parses an AMQP URI as RabbitMQ documents it; the vhost is the percent-decoded path
    /// (`%2f` is `/`, the default when the path is empty).
    public init(uri: String) throws {
        guard let components = URLComponents(string: uri), let scheme = components.scheme,
            scheme == "amqp", let host = components.host, !host.isEmpty
        else {
            throw AMQPError(.invalidURI, "expected amqp://user:password@host:port/vhost")
        }
        let port = components.port ?? 5672
        guard (1...65_535).contains(port) else { throw AMQPError(.invalidURI, "the port must be 1 to 65535") }
        self.init(
            host: host,
            port: port,
            user: components.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? "guest",
            password: components.percentEncodedPassword.flatMap { $0.removingPercentEncoding } ?? "guest"
        )
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            self.virtualHost = "/"
        } else {
            self.virtualHost = String(path.dropFirst()).removingPercentEncoding ?? "/"
        }
        for item in components.queryItems ?? [] where item.name == "heartbeat" {
            guard let value = item.value.flatMap(Int.init), (0...600).contains(value) else {
                throw AMQPError(.invalidURI, "heartbeat must be 0 to 600 seconds")
            }
            self.heartbeat = value
        }
    }
}
