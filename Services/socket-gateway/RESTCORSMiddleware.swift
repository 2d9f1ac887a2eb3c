import HTTPTypes
import Hummingbird

/// CORS for the REST routes, so that a browser app served from another origin can call them
/// with its bearer token (`CORS_ORIGIN`, as for long-polling: `*` or one origin; empty turns
/// CORS off). It answers preflights itself, and puts the allowed origin on every other answer,
/// errors included (it runs outside ``ErrorShapeMiddleware``), with `Retry-After` and
/// `X-Correlation-Id` readable by the page. Long-polling keeps the engine's own CORS (it echoes
/// the origin and allows credentials, as Socket.IO servers do). No cookies are involved, so no
/// credentials are allowed here.
struct RESTCORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let origin: String
    /// Requests under this path are the engine's.
    let enginePath: String

    static var allowedHeaders: String { "Authorization, Content-Type, Accept, traceparent" }
    static var allowedMethods: String { "GET, HEAD, POST, PATCH, OPTIONS" }
    static var exposedHeaders: String { "Retry-After, X-Correlation-Id" }

    init?(origin: String?, enginePath: String) {
        guard let origin, !origin.isEmpty else { return nil }
        self.origin = origin
        self.enginePath = enginePath
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        guard request.headers[.origin] != nil, !request.uri.path.hasPrefix(self.enginePath) else {
            return try await next(request, context)
        }
        var headers = HTTPFields()
        headers[.accessControlAllowOrigin] = self.origin
        if self.origin != "*" { headers[.vary] = "Origin" }
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            headers[.accessControlAllowMethods] = Self.allowedMethods
            headers[.accessControlAllowHeaders] = Self.allowedHeaders
            headers[.accessControlMaxAge] = "600"
            return Response(status: .noContent, headers: headers)
        }
        var response = try await next(request, context)
        headers[.accessControlExposeHeaders] = Self.exposedHeaders
        for field in headers { response.headers[field.name] = field.value }
        return response
    }
}
