import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import PostgresNIO

/// The users messaging knows: a read model of auth's users, kept from `auth.user_*` events
/// (``UserEventsConsumer``). A user who registered a moment ago may not have reached it yet, so
/// ids it does not know are asked of auth by RPC once and stored.
struct UserDirectory: Sendable {
    let client: Database
    let rpc: RPCClient
    let logger: Logger

    /// Those of `ids` that are not users; auth is asked until `deadline` at most.
    func unknown(_ ids: [UUID], before deadline: ContinuousClock.Instant?) async throws -> [UUID] {
        guard !ids.isEmpty else { return [] }
        var missing = Set(ids).subtracting(try await self.known(ids))
        guard !missing.isEmpty else { return [] }
        // No longer than the request this serves waits: with a timeout of its own, a slow auth
        // let a group be created after its caller had been answered `unavailable`, and the
        // caller's retry created a second one (a review in the forty-fourth session).
        let timeout = deadline.map { ContinuousClock.now.duration(to: $0) }
        if let timeout, timeout <= .zero { throw ServiceError.unavailable("the request's deadline passed") }
        let found = try await self.rpc.call(
            AuthMessage.usersByID, to: .auth, payload: UsersByIDRequest(ids: missing.map(EntityID.init)), replyAs: UserList.self,
            timeout: timeout)
        for user in found.items {
            try await self.store(user, at: user.createdAt)
            missing.remove(user.id.uuid)
        }
        return ids.filter(missing.contains)
    }

    /// Inserts or updates a user, unless a newer version is already stored.
    func store(_ user: User, at version: Date) async throws {
        try await self.client.write(
            """
            INSERT INTO users (id, username, display_name, updated_at)
            VALUES (\(user.id.uuid), \(user.username), \(user.displayName), \(version))
            ON CONFLICT (id) DO UPDATE SET username = excluded.username, display_name = excluded.display_name,
                updated_at = excluded.updated_at
            WHERE users.updated_at <= excluded.updated_at
            """, logger: self.logger)
    }

    private func known(_ ids: [UUID]) async throws -> Set<UUID> {
        let rows = try await self.client.query("SELECT id FROM users WHERE id = ANY(\(ids))", logger: self.logger)
        var known = Set<UUID>()
        for try await id in rows.decode(UUID.self) { known.insert(id) }
        return known
    }
}
