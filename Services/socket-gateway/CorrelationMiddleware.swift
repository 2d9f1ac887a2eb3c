import HTTPTypes
import Hummingbird
import MessengerContracts

/// Gives every HTTP request its correlation id: the trace id of the client's W3C `traceparent`
/// header when that is valid, a new one otherwise. It is bound as ``RequestCorrelation`` while
/// the request is handled, so the RPCs the request makes carry it on and the log lines written
/// for it show it, and it goes back to the client in `X-Correlation-Id`, on errors too, for the
/// client to quote.
struct CorrelationMiddleware<Context: RequestContext>: RouterMiddleware {
    static var traceParent: HTTPField.Name { HTTPField.Name("traceparent")! }
    static var correlationID: HTTPField.Name { HTTPField.Name("X-Correlation-Id")! }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        let id = request.headers[Self.traceParent].flatMap { TraceParent(header: $0)?.traceID } ?? TraceParent.newTraceID()
        var response: Response
        do {
            response = try await RequestCorrelation.$id.withValue(id) { try await next(request, context) }
        } catch let error as HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        response.headers[Self.correlationID] = id
        return response
    }
}
