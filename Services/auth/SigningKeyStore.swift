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
            if let stored = try await self.stored(client: client, logger: logger) { return stored }
            let key = SigningKey(Curve25519.Signing.PrivateKey())
            try await client.write(
                """
                INSERT INTO signing_keys (kid, private_key) VALUES (\(key.kid), \(key.privateKey.rawRepresentation))
                ON CONFLICT DO NOTHING
                """, logger: logger)
            // Two replicas starting together may both have inserted one: everyone takes the oldest.
            guard let chosen = try await self.stored(client: client, logger: logger) else {
                throw ServiceError.internal("no signing key could be stored")
            }
            logger.notice("generated the access token signing key", metadata: ["kid": "\(chosen.kid)"])
            return chosen
        }
    }

    private static func stored(client: Database, logger: Logger) async throws -> SigningKey? {
        let rows = try await client.query(
            "SELECT private_key FROM signing_keys ORDER BY created_at, kid LIMIT 1", logger: logger)
        for try await raw in rows.decode(Data.self) {
            return SigningKey(try Curve25519.Signing.PrivateKey(rawRepresentation: raw))
        }
        return nil
    }
}
