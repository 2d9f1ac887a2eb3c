import Metrics
import Prometheus

/// swift-metrics backed by a Prometheus registry, exported at `/metrics` on the admin port.
public enum MessengerMetrics {
    /// Bootstraps the metrics system once per process and returns the registry to export.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.nameAndLabelSanitizer = { name, labels in
            (Self.prometheusName(name), labels.map { (Self.prometheusName($0.0), $0.1) })
        }
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// `name` as a Prometheus metric or label name: every character but ASCII letters, digits
    /// and `_` becomes `_`, and one that starts with a digit gets a `_` before it. Libraries
    /// name their metrics in other conventions (Hummingbird's `hb.requests`, with the label
    /// `http.route`), which the text format does not allow.
    public static func prometheusName(_ name: String) -> String {
        var result = String(
            String.UnicodeScalarView(
                name.unicodeScalars.map { scalar in
                    scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || scalar == "_")
                        ? scalar : "_"
                }))
        if let first = result.unicodeScalars.first, ("0"..."9").contains(first) { result = "_" + result }
        return result
    }
}
