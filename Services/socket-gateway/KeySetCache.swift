import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerTokens
import ServiceLifecycle
import Synchronization

/// The gateway's copy of auth's public keys: fetched over RPC at start, replaced when auth
/// announces new keys (`auth.keys_changed.v1`), and fetched again (at most every few seconds)
/// when a token names a key id it does not know.
final class KeySetCache: Sendable {
    let verifier: AccessTokenVerifier
    private let rpc: RPCClient
    private let logger: Logger
    private let lastRefresh = Mutex<ContinuousClock.Instant?>(nil)
    private static let refreshInterval: Duration = .seconds(5)

    init(audience: TokenAudience, rpc: RPCClient, logger: Logger) {
        self.verifier = AccessTokenVerifier(expected: audience)
        self.rpc = rpc
        self.logger = logger
    }

    /// Fetches the key set from auth.
    func refresh() async throws {
        let set = try await self.rpc.call(AuthMessage.jwks, to: .auth, payload: EmptyPayload(), replyAs: JSONWebKeySet.self)
        try await self.verifier.update(set)
        self.logger.info("verification keys loaded", metadata: ["kids": "\(set.keys.map(\.kid))"])
    }

    /// The user id of a valid access token, or nil.
    func verify(_ token: String) async -> UUID? {
        do {
            return try await self.verifier.verify(token)
        } catch .unknownKey(let kid) where !kid.isEmpty && self.mayRefresh() {
            try? await self.refresh()
            return try? await self.verifier.verify(token)
        } catch {
            return nil
        }
    }

    private func mayRefresh() -> Bool {
        self.lastRefresh.withLock { last in
            let now = ContinuousClock.now
            if let last, now - last < Self.refreshInterval { return false }
            last = now
            return true
        }
    }
}

/// Listens for `auth.keys_changed.v1` on a queue of this gateway instance's own.
struct KeyChangeListener: Service {
    let amqp: AMQPConnection
    let cache: KeySetCache
    let instanceID: String
    let logger: Logger

    func run() async throws {
        let queue = "\(instanceID).auth-keys"
        try await self.amqp.declare(
            AMQPTopology(
                exchanges: [.init(ExchangeName.events, kind: .topic)],
                queues: [.init(queue, durable: false, exclusive: true, autoDelete: true)],
                bindings: [.init(queue: queue, exchange: ExchangeName.events, routingKey: AuthMessage.keysChanged.rawValue)]))
        let consumer = self.amqp.consume(queue: queue, prefetch: 4)
        try await consumer.runUntilShutdown {
            for await delivery in consumer {
                do {
                    let envelope = try MessengerJSON.decode(Envelope<JSONWebKeySet>.self, from: delivery.body)
                    try await self.cache.verifier.update(envelope.data)
                    self.logger.info("verification keys replaced", metadata: ["kids": "\(envelope.data.keys.map(\.kid))"])
                } catch {
                    self.logger.warning("undecodable key announcement", metadata: ["error": "\(error)"])
                }
                delivery.ack()
            }
        }
    }
}
