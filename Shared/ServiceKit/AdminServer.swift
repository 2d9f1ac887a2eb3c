import Foundation
import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// The small HTTP server on a service's admin port: `/healthz` (alive), `/readyz` (200 only when
/// every dependency answers) and `/metrics` (Prometheus text format).
public enum AdminServer {
    public typealias Routes = Router<BasicRequestContext>

    /// Adds the three admin routes to `router`.
    public static func addRoutes(to router: Routes, checks: [ReadinessCheck], registry: PrometheusCollectorRegistry) {
        Self.addHealthRoutes(to: router, checks: checks)
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }

    /// Adds `/healthz` and `/readyz` to `router`.
    public static func addHealthRoutes<Context: RequestContext>(to router: Router<Context>, checks: [ReadinessCheck]) {
        router.get("/healthz") { _, _ in
            Self.json(.ok, ["status": "ok"])
        }
        router.get("/readyz") { _, _ in
            let results = await Self.evaluate(checks)
            let ready = results.values.allSatisfy { $0 }
            return Self.json(
                ready ? .ok : .serviceUnavailable,
                ["status": ready ? "ready" : "not_ready"].merging(
                    results.mapValues { $0 ? "up" : "down" }, uniquingKeysWith: { first, _ in first }))
        }
    }

    /// The admin application for a service, bound to `host:port`. `extraRoutes` adds
    /// service-specific operator routes.
    public static func make(
        host: String, port: Int, checks: [ReadinessCheck], registry: PrometheusCollectorRegistry, logger: Logger,
        extraRoutes: (Routes) -> Void = { _ in }
    ) -> some Service {
        let router = Routes()
        Self.addRoutes(to: router, checks: checks, registry: registry)
        extraRoutes(router)
        var logger = logger
        logger[metadataKey: "http"] = "admin"
        return Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
    }

    static func evaluate(_ checks: [ReadinessCheck]) async -> [String: Bool] {
        await withTaskGroup(of: (String, Bool).self) { group in
            for check in checks { group.addTask { (check.name, await check.isReady()) } }
            var results: [String: Bool] = [:]
            for await (name, ready) in group { results[name] = ready }
            return results
        }
    }

    /// A JSON response from an encodable value.
    public static func json<T: Encodable>(_ status: HTTPResponse.Status, _ value: T) -> Response {
        let data = (try? JSONEncoder().encode(value)) ?? Data("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
