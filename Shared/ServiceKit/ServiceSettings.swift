import Foundation
import Logging
import MessengerAMQP
import MessengerPostgres
import MessengerRedis

/// The settings every service shares, read once at start.
public struct ServiceSettings: Sendable {
    /// The executable's name (`auth`, `socket-gateway`, ...).
    public var name: String
    /// Unique per process: names reply queues and shows in logs and ping replies.
    public var instanceID: String
    public var logLevel: Logger.Level
    public var adminHost: String
    public var adminPort: Int
    public var amqp: AMQPConfiguration
    /// How long an RPC waits for its reply before it fails as `unavailable`.
    public var rpcTimeout: Duration
    /// Unacknowledged requests a service works on at once.
    public var prefetch: UInt16
    /// `classic` on a single broker, `quorum` on a cluster.
    public var queueType: String

    /// Reads `LOG_LEVEL`, `<SERVICE>_ADMIN_PORT`, `ADMIN_HOST`, `RABBITMQ_URI`, `RABBITMQ_HEARTBEAT`,
    /// `RABBITMQ_BATCHES`, `RABBITMQ_QUEUE_TYPE`, `RABBITMQ_PREFETCH`, `RPC_TIMEOUT_MS`.
    public init(
        name: String, adminPortVariable: String, defaultAdminPort: Int, defaultPrefetch: Int = 64,
        environment: ServiceEnvironment
    ) throws {
        self.name = name
        self.instanceID = "\(name)-\(UUID().uuidString.prefix(8).lowercased())"
        let level = try environment.choice(
            "LOG_LEVEL", default: "info", among: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        self.logLevel = Logger.Level(rawValue: level) ?? .info
        self.adminHost = environment.string("ADMIN_HOST", default: "127.0.0.1")
        self.adminPort = try environment.port(adminPortVariable, default: defaultAdminPort)
        var amqp = try environment.parsed("RABBITMQ_URI") { try AMQPConfiguration(uri: $0) }
        // `RABBITMQ_HEARTBEAT` wins over the URI's `?heartbeat=`, which wins over the default.
        amqp.heartbeat = try environment.int("RABBITMQ_HEARTBEAT", default: amqp.heartbeat, in: 0...600)
        amqp.connectionName = self.instanceID
        amqp.sendsBatches = try environment.choice("RABBITMQ_BATCHES", default: "on", among: ["on", "off"]) == "on"
        self.amqp = amqp
        self.queueType = try environment.choice("RABBITMQ_QUEUE_TYPE", default: "classic", among: ["classic", "quorum"])
        self.prefetch = UInt16(try environment.int("RABBITMQ_PREFETCH", default: defaultPrefetch, in: 1...10_000))
        // At least 2 s: a write checks that 500 ms are left before it commits (`CommitDeadline`),
        // and a request's wait in its queue counts past a second (`RPCServer.clockAllowance`);
        // under that every such write was `unavailable` (until the fifty-third session 1 ms was
        // taken; a review).
        self.rpcTimeout = try environment.milliseconds("RPC_TIMEOUT_MS", default: 5000, in: 2000...3_600_000)
    }

    /// Arguments for the service's durable queues (`x-queue-type`).
    public var durableQueueArguments: [String: AMQPFieldValue] {
        ["x-queue-type": .string(self.queueType)]
    }
}

extension DatabaseConfiguration {
    /// Reads `DATABASE_URL`, `DATABASE_POOL_SIZE`, `DATABASE_KEEPALIVE_SECONDS` and
    /// `DATABASE_IDLE_IN_TRANSACTION_SECONDS` (30 by default, 0 leaves the server's setting) for a
    /// service that owns `schema`.
    public init(environment: ServiceEnvironment, schema: String) throws {
        self = try environment.parsed("DATABASE_URL") { try DatabaseConfiguration(url: $0, schema: schema) }
        // At least 2: auth's and messaging's outbox relay holds one for as long as it runs, and
        // with a pool of 1 every RPC waited for a connection until its deadline (review).
        self.maximumConnections = try environment.int("DATABASE_POOL_SIZE", default: 8, in: 2...200)
        let keepAlive = try environment.int("DATABASE_KEEPALIVE_SECONDS", default: 0, in: 0...86_400)
        self.keepAlive = keepAlive > 0 ? .seconds(keepAlive) : nil
        let idle = try environment.int("DATABASE_IDLE_IN_TRANSACTION_SECONDS", default: 30, in: 0...86_400)
        self.idleInTransactionTimeout = idle > 0 ? .seconds(idle) : nil
    }
}

extension RedisConfiguration {
    /// Reads `REDIS_HOST`, `REDIS_PORT` and `REDIS_PASSWORD`.
    public init(environment: ServiceEnvironment) throws {
        self.init(
            host: environment.string("REDIS_HOST", default: "127.0.0.1"),
            port: try environment.port("REDIS_PORT", default: 6379),
            password: environment.optional("REDIS_PASSWORD"))
    }
}
