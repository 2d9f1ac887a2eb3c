import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import Synchronization

/// Whether each service behind the gateway answers its RPCs: the public port's `/readyz` is 200
/// only when "every dependency answers" (protocol.md), and the services are dependencies as much
/// as the broker and Redis are. Until the fifty-eighth session it looked at the broker and Redis
/// alone, so it was 200 with messaging or media down, and a harness that waited for it could
/// start before they had (a review). The admin port's `/readyz` leaves the services out: it is
/// what load balancers route by, and one service down must not take every gateway out.
///
/// A service that answered any call of the gateway in the last ``recent`` counts as answering,
/// without a look of its own: under load the answers are there, and a ping queued behind a busy
/// service's requests would say nothing more. Otherwise one ping is sent (``pingTimeout``), shared
/// by every probe that asks meanwhile, so a flood of `/readyz` requests on the public port sends
/// at most one ping per service at a time, and none while calls are being answered.
final class ServiceReachability: Sendable {
    private let rpc: RPCClient
    private let recent: Duration
    private let pingTimeout: Duration
    /// The ping under way to each service, if any.
    private let pings = Mutex<[ServiceName: Task<Void, Never>]>([:])

    init(rpc: RPCClient, recent: Duration = .seconds(5), pingTimeout: Duration = .seconds(2)) {
        self.rpc = rpc
        self.recent = recent
        self.pingTimeout = pingTimeout
    }

    /// One readiness check per service, named after it.
    var checks: [ReadinessCheck] {
        ServiceName.rpcServers.map { service in
            ReadinessCheck(name: service.rawValue) { await self.answers(service) }
        }
    }

    /// Whether `service` answered within ``recent``, or answers a ping now.
    func answers(_ service: ServiceName) async -> Bool {
        if self.answeredRecently(service) { return true }
        await self.ping(service).value
        return self.answeredRecently(service)
    }

    private func answeredRecently(_ service: ServiceName) -> Bool {
        guard let last = self.rpc.lastAnswer(from: service) else { return false }
        return ContinuousClock.now - last < self.recent
    }

    /// The ping under way to `service`, or a new one. Its answer, an error reply included, is
    /// recorded by the RPC client as the service's last answer.
    private func ping(_ service: ServiceName) -> Task<Void, Never> {
        self.pings.withLock { pings in
            if let underway = pings[service] { return underway }
            // Serves no request: the `/readyz` request that started it is only the first of those
            // that await it, and its correlation id is the client's.
            let ping = RequestScope.detach {
                _ = try? await self.rpc.ping(service, timeout: self.pingTimeout)
                _ = self.pings.withLock { $0.removeValue(forKey: service) }
            }
            pings[service] = ping
            return ping
        }
    }
}
