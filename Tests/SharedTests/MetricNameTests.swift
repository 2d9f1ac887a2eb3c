import MessengerServiceKit
import Testing

@Suite("Prometheus names")
struct MetricNameTests {
    @Test("names from other conventions become valid Prometheus names, and valid ones stay as they are")
    func names() {
        #expect(MessengerMetrics.prometheusName("hb.requests") == "hb_requests")
        #expect(MessengerMetrics.prometheusName("http.server.request.duration") == "http_server_request_duration")
        #expect(MessengerMetrics.prometheusName("http.route") == "http_route")
        #expect(MessengerMetrics.prometheusName("rpc_server_requests_total") == "rpc_server_requests_total")
        #expect(MessengerMetrics.prometheusName("2xx-rate é") == "_2xx_rate__")
        #expect(MessengerMetrics.prometheusName("") == "")
    }
}
