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
