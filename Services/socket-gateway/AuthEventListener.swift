import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import ServiceLifecycle
import SocketIOServer

/// Listens, on a queue of this gateway instance's own, for auth's announcements: new
/// verification keys (`auth.keys_changed.v1`), and revoked login sessions
/// (`auth.sessions_revoked.v1`), whose sockets it disconnects.
///
/// The queue exists only while this instance is connected, so announcements made before it
/// started or while the broker was away never reach it. For the keys, a token with an unknown
/// key id makes the gateway fetch them, and so does every `catchUpInterval` (a minute by
/// default). For the sessions, ``catchUp()`` fetches the list of revoked ones at start (after
/// the queue is bound) and every `catchUpInterval`.
struct AuthEventListener: Service {
    let amqp: AMQPConnection
    let tokens: AccessTokenCheck
    let sockets: SocketIOServer
    let instanceID: String
    let catchUpInterval: Duration
    let logger: Logger

    /// The instance's queue and its bindings; declared at start, before the first ``catchUp()``.
    static func topology(instanceID: String) -> AMQPTopology {
        let queue = self.queue(instanceID: instanceID)
        return AMQPTopology(
            exchanges: [.init(ExchangeName.events, kind: .topic)],
            queues: [.init(queue, durable: false, exclusive: true, autoDelete: true)],
            bindings: [AuthMessage.keysChanged, AuthMessage.sessionsRevoked].map {
                .init(queue: queue, exchange: ExchangeName.events, routingKey: $0.rawValue)
            })
    }

    private static func queue(instanceID: String) -> String { "\(instanceID).auth" }

    /// Fetches the sessions auth revoked lately and disconnects the sockets of those that were
    /// not known.
    func catchUp() async throws {
        try await self.tokens.syncRevokedSessions { await self.disconnect($0) }
    }

    func run() async throws {
        let consumer = self.amqp.consume(queue: Self.queue(instanceID: self.instanceID), prefetch: 16)
        try await consumer.runUntilShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.catchUpPeriodically() }
                for await delivery in consumer {
                    await self.handle(delivery)
                    delivery.ack()
                }
                group.cancelAll()
            }
        }
    }

    private func handle(_ delivery: AMQPDelivery) async {
        do {
            switch delivery.routingKey {
            case AuthMessage.keysChanged.rawValue:
                let envelope = try MessengerJSON.decode(Envelope<JSONWebKeySet>.self, from: delivery.body)
                if try await self.tokens.announced(envelope.data) {
                    self.logger.info("verification keys replaced", metadata: ["kids": "\(envelope.data.keys.map(\.kid))"])
                }
            case AuthMessage.sessionsRevoked.rawValue:
                let envelope = try MessengerJSON.decode(Envelope<RevokedSessions>.self, from: delivery.body)
                if let added = self.tokens.revoke(envelope.data) { await self.disconnect(added) }
            default:
                self.logger.warning("unexpected announcement", metadata: ["routing_key": "\(delivery.routingKey)"])
            }
        } catch {
            self.logger.warning(
                "undecodable announcement",
                metadata: ["routing_key": "\(delivery.routingKey)", LogKey.error: "\(LoggedError(error))"])
        }
    }

    /// Disconnects this instance's sockets of the revoked sessions.
    private func disconnect(_ revoked: RevokedSessions) async {
        let sessions = Set(revoked.sessionIds.map(\.uuid))
        let affected = self.sockets.rooms.sockets(in: ["user:\(revoked.userId)"]).filter { socket in
            socket.loginSession.map(sessions.contains) ?? false
        }
        for socket in affected { await socket.disconnect() }
        // A line per user whose sockets were here; a gateway's start learns every recent
        // revocation, mostly of users it has never seen.
        self.logger.log(
            level: affected.isEmpty ? .debug : .info, "revoked sessions disconnected",
            metadata: ["user_id": "\(revoked.userId)", "sessions": "\(sessions.count)", "sockets": "\(affected.count)"])
    }

    private func catchUpPeriodically() async {
        while true {
            do {
                try await LoopTimer.sleep(for: self.catchUpInterval)
            } catch {
                return
            }
            do {
                try await self.catchUp()
            } catch {
                self.logger.warning("could not fetch the revoked sessions", metadata: [LogKey.error: "\(LoggedError(error))"])
            }
            do {
                try await self.tokens.refresh()
            } catch {
                self.logger.warning(
                    "could not fetch the verification keys", metadata: [LogKey.error: "\(LoggedError(error))"])
            }
        }
    }
}
