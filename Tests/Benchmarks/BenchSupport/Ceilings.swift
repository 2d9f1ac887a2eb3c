import Foundation
import Logging
import MessengerAMQP
import MessengerRedis
import PostgresNIO

/// The ceilings of this machine, measured with the same tools in the same run as the figures
/// they are compared with: what the servers do when driven as plainly as possible.
public enum Ceilings {
    /// Persistent messages published to a durable queue by librabbitmq-c in a plain loop on one
    /// thread, with publisher confirms in a window of `window`; messages per second.
    public static func rabbitMQPublishConfirm(
        _ configuration: AMQPConfiguration, messages: Int = 50_000, bodyBytes: Int = 512, window: Int = 256,
        logger: Logger
    ) async throws -> Double {
        let connection = AMQPConnection(configuration: configuration, logger: logger)
        let queue = "bench.ceiling.\(UUID().uuidString.prefix(8))"
        try await connection.declare(AMQPTopology(queues: [.init(queue, arguments: ["x-expires": .int(60_000)])]))
        await connection.close()
        let body = [UInt8](repeating: 0x61, count: bodyBytes)
        let elapsed = try await RawRabbitMQPublisher(configuration: configuration).publishOnOwnThread(
            count: messages, body: body, queue: queue, window: window)
        return Double(messages) / elapsed.seconds
    }

    /// The one statement of the PostgreSQL ceiling, prepared once per connection.
    struct CeilingInsert: PostgresPreparedStatement {
        typealias Row = ()
        static let sql = "INSERT INTO public.bench_ceiling (id, thread_id, body) VALUES ($1, $2, $3)"
        var id: UUID
        var threadID: UUID
        var body: String

        func makeBindings() throws -> PostgresBindings {
            var bindings = PostgresBindings(capacity: 3)
            bindings.append(self.id)
            bindings.append(self.threadID)
            bindings.append(self.body)
            return bindings
        }

        func decodeRow(_ row: PostgresRow) throws {}
    }

    /// Prepared single-row insert-commits of a message-sized row from `connections` connections
    /// for `duration`; rows per second. The table lives in `public` and is dropped afterwards.
    public static func postgresInsertCommit(
        _ postgres: PostgresClient, connections: Int = 8, duration: Duration = .seconds(5), logger: Logger
    ) async throws -> Double {
        try await postgres.query(
            """
            CREATE TABLE IF NOT EXISTS public.bench_ceiling (
                id uuid PRIMARY KEY, thread_id uuid NOT NULL, body text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        let started = ContinuousClock.now
        let count = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<connections {
                group.addTask {
                    try await postgres.withConnection { connection in
                        var count = 0
                        let thread = UUID()
                        while ContinuousClock.now - started < duration {
                            _ = try await connection.execute(
                                CeilingInsert(id: UUID(), threadID: thread, body: "message body"), logger: logger)
                            count += 1
                        }
                        return count
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        let rate = Double(count) / (ContinuousClock.now - started).seconds
        try await postgres.query("DROP TABLE public.bench_ceiling", logger: logger)
        return rate
    }

    /// PUBLISH of `bodyBytes`-byte messages through the pipelining client from 256 concurrent
    /// callers; messages per second.
    public static func redisPublish(
        _ configuration: RedisConfiguration, messages: Int = 100_000, bodyBytes: Int = 256, logger: Logger
    ) async throws -> Double {
        let client = RedisClient(configuration: configuration, logger: logger)
        while !client.isConnected { try await Task.sleep(for: .milliseconds(10)) }
        let body = [UInt8](repeating: 0x61, count: bodyBytes)
        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<256 {
                group.addTask {
                    var index = lane
                    while index < messages {
                        try await client.publish(channel: "bench#channel", message: body)
                        index += 256
                    }
                }
            }
            try await group.waitForAll()
        }
        let rate = Double(messages) / (ContinuousClock.now - started).seconds
        await client.close()
        return rate
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var seconds: Double { Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18 }

    /// The duration in microseconds (for histograms).
    public var microseconds: Int64 { self.components.seconds * 1_000_000 + self.components.attoseconds / 1_000_000_000_000 }
}

/// One line on standard output, unbuffered, so progress and tables stay in order.
public func say(_ line: String = "") {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
