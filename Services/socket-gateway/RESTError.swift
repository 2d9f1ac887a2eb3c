import Foundation
import Hummingbird
import Logging
import MessengerContracts
import NIOCore

/// A contract error as an HTTP response: the status for its code and the body
/// `{"error": {"code", "message"}}`, with `Retry-After` when the error carries one, and
/// `Cache-Control: no-store`.
struct RESTError: HTTPResponseError {
    let error: ServiceError
    let status: HTTPResponse.Status

    init(_ error: ServiceError, status: HTTPResponse.Status? = nil) {
        self.error = error
        self.status = status ?? Self.status(for: error.code)
    }

    /// `invalid_argument` from a service is an out-of-limit value (422); malformed requests are
    /// refused by the gateway itself with 400.
    static func status(for code: ErrorCode) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument: .unprocessableContent
        case .unauthorized: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .payloadTooLarge: .contentTooLarge
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        default: .internalServerError
        }
    }

    /// A malformed request: 400.
    static func malformed(_ message: String) -> RESTError {
        RESTError(.invalidArgument(message), status: .badRequest)
    }

    private struct Body: Encodable {
        var error: Detail
        struct Detail: Encodable {
            var code: ErrorCode
            var message: String
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        // No cache keeps an error: Hummingbird makes this response outside the middleware chain,
        // where ``APICacheMiddleware`` never sees it (until the forty-ninth session `/api`'s
        // errors went without `Cache-Control`, and a browser may keep a 404 by heuristic).
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"]
        if let retryAfter = self.error.retryAfter { headers[.retryAfter] = String(retryAfter) }
        if self.status == .unauthorized { headers[.wwwAuthenticate] = "Bearer" }
        let body = try MessengerJSON.encode(Body(error: .init(code: self.error.code, message: self.error.message)))
        return Response(status: self.status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// Gives every failure the contract's JSON error shape: Hummingbird's own errors (unknown route,
/// body too large) by their status, and anything unexpected as a logged 500 that leaks nothing.
struct ErrorShapeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as RESTError {
            throw error
        } catch let error as ServiceError {
            throw RESTError(error)
        } catch let error as HTTPError {
            switch error.status {
            case .notFound: throw RESTError(.notFound("no such route"))
            case .contentTooLarge: throw RESTError(.init(.payloadTooLarge, "the request body is too large"))
            case .methodNotAllowed: throw RESTError(.notFound("no such route"), status: .methodNotAllowed)
            case .badRequest: throw RESTError.malformed(error.body ?? "malformed request")
            case .unauthorized: throw RESTError(.unauthorized())
            default: throw RESTError(.init(.internal, "internal error"), status: error.status)
            }
        } catch is NIOTooManyBytesError {
            throw RESTError(.init(.payloadTooLarge, "the request body is too large"))
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(LoggedError(error))"])
            throw RESTError(.internal())
        }
    }
}
