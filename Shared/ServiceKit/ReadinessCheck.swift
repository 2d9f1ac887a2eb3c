import Logging
import MessengerAMQP
import MessengerPostgres
import MessengerRedis
import PostgresNIO
import Synchronization

/// One dependency `/readyz` asks about.
public struct ReadinessCheck: Sendable {
    public var name: String
    public var isReady: @Sendable () async -> Bool

    public init(name: String, isReady: @escaping @Sendable () async -> Bool) {
        self.name = name
        self.isReady = isReady
    }

    /// The broker connection is open.
    public static func amqp(_ connection: AMQPConnection) -> ReadinessCheck {
        ReadinessCheck(name: "rabbitmq") { connection.isConnected }
    }

    /// The Redis command connection is open.
    public static func redis(_ client: RedisClient) -> ReadinessCheck {
        ReadinessCheck(name: "redis") { client.isConnected }
    }

    /// The Redis subscriber is connected and subscribed.
    public static func redisSubscriber(_ subscriber: RedisSubscriber) -> ReadinessCheck {
        ReadinessCheck(name: "redisSubscriber") { subscriber.isConnected }
    }

    /// PostgreSQL answers `SELECT 1` within `limit` (``DatabaseProbe``: the look ends within it
    /// even when the server is frozen).
    public static func postgres(_ database: Database, limit: Duration = .seconds(1), logger: Logger) -> ReadinessCheck {
        let probe = DatabaseProbe(database, limit: limit, logger: logger)
        return ReadinessCheck(name: "postgres") { await probe.answers() }
    }

    /// The service finished its start-up steps (migrations, topology).
    public static func started(_ flag: ReadyFlag) -> ReadinessCheck {
        ReadinessCheck(name: "started") { flag.isSet }
    }
}

/// A flag set once a service has finished starting.
public final class ReadyFlag: Sendable {
    private let value = Atomic(false)
    public init() {}
    public var isSet: Bool { self.value.load(ordering: .acquiring) }
    public func set() { self.value.store(true, ordering: .releasing) }
}
