import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MessengerContracts
import Testing

@testable import SocketGateway

/// Each REST request's correlation id: taken from the client's `traceparent` or started, bound
/// while the request is handled, and sent back in `X-Correlation-Id`, on errors too.
@Suite("The gateway's correlation ids")
struct CorrelationTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

    static func application() -> some ApplicationProtocol {
        let router = Router(context: GatewayRequestContext.self)
        router.add(middleware: CorrelationMiddleware())
        router.add(middleware: ErrorShapeMiddleware())
        router.get("/bound") { _, _ -> String in RequestCorrelation.id ?? "none" }
        router.get("/refused") { _, _ -> Response in throw ServiceError.forbidden("not yours") }
        return Application(router: router)
    }

    @Test("a valid traceparent's trace id is the request's correlation id")
    func fromTraceParent() async throws {
        try await Self.application().test(.router) { client in
            let headers: HTTPFields = [
                CorrelationMiddleware<GatewayRequestContext>.traceParent: "00-\(Self.traceID)-00f067aa0ba902b7-01"
            ]
            try await client.execute(uri: "/bound", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == Self.traceID)
                #expect(response.headers[CorrelationMiddleware<GatewayRequestContext>.correlationID] == Self.traceID)
            }
        }
    }

    @Test("without a valid traceparent each request gets a new trace id")
    func started() async throws {
        try await Self.application().test(.router) { client in
            var ids: [String] = []
            for headers: HTTPFields in [
                [:], [CorrelationMiddleware<GatewayRequestContext>.traceParent: "00-\(Self.traceID)-0000000000000000-01"],
            ] {
                try await client.execute(uri: "/bound", method: .get, headers: headers) { response in
                    let bound = String(buffer: response.body)
                    #expect(TraceParent(header: "00-\(bound)-00f067aa0ba902b7-01")?.traceID == bound)
                    #expect(response.headers[CorrelationMiddleware<GatewayRequestContext>.correlationID] == bound)
                    ids.append(bound)
                }
            }
            #expect(Set(ids).count == 2 && !ids.contains(Self.traceID))
        }
    }

    @Test("an error response carries the correlation id too")
    func onErrors() async throws {
        try await Self.application().test(.router) { client in
            let headers: HTTPFields = [
                CorrelationMiddleware<GatewayRequestContext>.traceParent: "00-\(Self.traceID)-00f067aa0ba902b7-01"
            ]
            for uri in ["/refused", "/no/such/route"] {
                try await client.execute(uri: uri, method: .get, headers: headers) { response in
                    #expect(response.status == (uri == "/refused" ? .forbidden : .notFound))
                    #expect(response.headers[CorrelationMiddleware<GatewayRequestContext>.correlationID] == Self.traceID)
                    #expect(String(buffer: response.body).contains(#""error""#))
                }
            }
        }
    }
}
