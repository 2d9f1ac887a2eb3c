import Hummingbird
import MessengerServiceKit

/// `/healthz` and `/readyz` on the public port, for load balancers.
struct HealthController {
    let checks: [ReadinessCheck]

    func addRoutes(to router: Router<BasicRequestContext>) {
        AdminServer.addHealthRoutes(to: router, checks: self.checks)
    }
}
