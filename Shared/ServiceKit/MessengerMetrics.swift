import Metrics
import Prometheus

/// swift-metrics backed by a Prometheus registry, exported at `/metrics` on the admin port.
public enum MessengerMetrics {
    /// Bootstraps the metrics system once per process and returns the registry to export.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }
}
