import Crypto
import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import MessengerTokens
import PostgresNIO

/// Finds the key that signs access tokens: configured (PEM), derived from `JWT_SECRET`, or
/// generated once and kept in auth's schema so that restarts and replicas share it.
enum SigningKeyStore {
    static func load(_ source: AuthSettings.KeySource, client: Database, logger: Logger) async throws -> SigningKey {
        switch source {
        case .configured(let key):
            return key
        case .secret(let secret):
            return SigningKey(derivedFrom: secret)
        case .generated:
            if let stored = try await self.stored(on: client, logger: logger) { return stored }
            let key = SigningKey(Curve25519.Signing.PrivateKey())
            // One replica at a time: the first stores its key, and the others, which wait for its
            // commit, read it. Without the lock two replicas starting together could each see
            // only their own key (each INSERT dated when it started, not when it committed) and
            // sign with different keys (review).
            let chosen = try await client.transaction(logger: logger) { connection -> SigningKey in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                if let stored = try await self.stored(on: connection, logger: logger) { return stored }
                try await connection.query(
                    "INSERT INTO signing_keys (kid, private_key) VALUES (\(key.kid), \(key.privateKey.rawRepresentation))",
                    logger: logger)
                return key
            }
            logger.notice("generated the access token signing key", metadata: ["kid": "\(chosen.kid)"])
            return chosen
        }
    }

    /// The advisory lock that orders the replicas generating a key.
    static let lockKey: Int64 = 0x6175_7468_6b65_7973  // "authkeys"

    private static func stored(on client: Database, logger: Logger) async throws -> SigningKey? {
        try await client.withConnection { try await self.stored(on: $0, logger: logger) }
    }

    private static func stored(on connection: PostgresConnection, logger: Logger) async throws -> SigningKey? {
        let rows = try await connection.query(
            "SELECT private_key FROM signing_keys ORDER BY created_at, kid LIMIT 1", logger: logger)
        for try await raw in rows.decode(Data.self) {
            return SigningKey(try Curve25519.Signing.PrivateKey(rawRepresentation: raw))
        }
        return nil
    }
}
