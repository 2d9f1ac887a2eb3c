import Foundation
import Hummingbird
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit

/// `GET /ping` on the admin port: pings every service over RabbitMQ and reports who answered,
/// proving gateway -> broker -> service -> broker -> gateway for each of them.
struct PingController {
    let rpc: RPCClient

    struct Result: Codable {
        var ok: Bool
        var instance: String?
        var milliseconds: Double
        var error: String?
    }

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/ping") { _, _ in
            let results = await withTaskGroup(of: (String, Result).self) { group in
                for service in ServiceName.rpcServers {
                    group.addTask { (service.rawValue, await self.ping(service)) }
                }
                var results: [String: Result] = [:]
                for await (name, result) in group { results[name] = result }
                return results
            }
            let allOK = results.values.allSatisfy(\.ok)
            return AdminServer.json(allOK ? .ok : .serviceUnavailable, results)
        }
    }

    private func ping(_ service: ServiceName) async -> Result {
        let started = ContinuousClock.now
        let command = PingCommand()
        do {
            let reply = try await self.rpc.ping(service, command, timeout: .seconds(2))
            let elapsed =
                Double((ContinuousClock.now - started).components.attoseconds) / 1e15
                + Double((ContinuousClock.now - started).components.seconds) * 1000
            let ok = reply.nonce == command.nonce && reply.service == service.rawValue
            return Result(ok: ok, instance: reply.instance, milliseconds: elapsed, error: ok ? nil : "mismatched reply")
        } catch {
            return Result(ok: false, instance: nil, milliseconds: 0, error: "\(LoggedError(error))")
        }
    }
}
