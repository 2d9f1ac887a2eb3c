import Foundation
import MessengerAMQP

/// Opens a broker connection for the length of `body` and closes it after, whatever happens.
public func withAMQPConnection<T>(
    name: String = "test", configuring configure: (inout AMQPConfiguration) -> Void = { _ in },
    _ body: (AMQPConnection) async throws -> T
) async throws -> T {
    var configuration = try TestEnvironment.amqpConfiguration(name: name)
    configure(&configuration)
    let connection = AMQPConnection(configuration: configuration, logger: TestEnvironment.logger)
    do {
        let result = try await body(connection)
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw error
    }
}

/// Runs `body`, failing with a clear error if it takes longer than `limit`.
public func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw TestFailure("timed out after \(limit)")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Test queues expire a minute after their last use, so runs leave nothing behind.
public let testQueueArguments: [String: AMQPFieldValue] = ["x-expires": .int(60_000)]

/// Declares a fresh test queue (named from `prefix`) bound to the direct exchange `test.direct`
/// by its own name; returns that exchange and the queue.
public func declareTestQueue(_ connection: AMQPConnection, _ prefix: String) async throws -> (exchange: String, queue: String) {
    let exchange = "test.direct"
    let queue = TestEnvironment.uniqueName(prefix)
    try await connection.declare(
        AMQPTopology(
            exchanges: [.init(exchange, kind: .direct)], queues: [.init(queue, arguments: testQueueArguments)],
            bindings: [.init(queue: queue, exchange: exchange, routingKey: queue)]))
    return (exchange, queue)
}

/// The next message on `queue` (waiting up to 10 s), acknowledged; the consumer's channel is
/// closed, which gives the messages it received after that one back to the queue.
public func takeOneMessage(_ connection: AMQPConnection, from queue: String) async throws -> AMQPDelivery {
    let consumer = connection.consume(queue: queue)
    defer { consumer.close() }
    let delivery = try await withTimeout(.seconds(10)) {
        var iterator = consumer.makeAsyncIterator()
        guard let delivery = await iterator.next() else { throw TestFailure("the consumer of \(queue) ended") }
        return delivery
    }
    delivery.ack()
    return delivery
}
