import Foundation
import MessengerAMQP
import MessengerPostgres
import MessengerServiceKit
import TestSupport

@testable import MessagingService

/// A ``Conversations`` on `client` whose users are stored in `database` beforehand, so that its
/// directory asks auth nothing (its RPC client, on a real broker connection, stays unused).
enum MessagingTestbed {
    static func withConversations<T>(
        on client: Database, users: [UUID], storedIn database: Database, _ body: (Conversations) async throws -> T
    ) async throws -> T {
        let logger = TestEnvironment.logger
        for (index, id) in users.enumerated() {
            try await database.query(
                "INSERT INTO users (id, username, display_name, updated_at) VALUES (\(id), \("user\(index)"), \("user"), now())",
                logger: logger)
        }
        return try await withAMQPConnection(name: "test-conversations") { amqp in
            let rpc = RPCClient(connection: amqp, instanceName: "test-conversations", logger: logger)
            return try await body(
                Conversations(
                    client: client, users: UserDirectory(client: client, rpc: rpc, logger: logger),
                    outbox: OutboxSignal(), faults: FaultPoints(environment: ServiceEnvironment([:])), logger: logger))
        }
    }
}
