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
        ReadinessCheck(name: "redis_subscriber") { subscriber.isConnected }
    }

    /// PostgreSQL answers `SELECT 1` within a second.
    public static func postgres(_ database: Database, logger: Logger) -> ReadinessCheck {
        ReadinessCheck(name: "postgres") {
            await withTaskGroup(of: Bool.self) { group in
                group.addTask { (try? await database.query("SELECT 1", logger: logger)) != nil }
                group.addTask {
                    try? await Task.sleep(for: .seconds(1))
                    return false
                }
                defer { group.cancelAll() }
                return await group.next() ?? false
            }
        }
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
