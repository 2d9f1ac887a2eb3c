import Foundation
import Hummingbird
import MessengerTokens

/// Verifies `Authorization: Bearer <access token>` locally against the cached JWKS and puts
/// the user id in the context; anything else is 401.
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let keys: KeySetCache

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        guard let authorization = request.headers[.authorization],
            authorization.lowercased().hasPrefix("bearer ")
        else { throw RESTError(.unauthorized("a bearer token is required")) }
        let token = String(authorization.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        guard let userID = await self.keys.verify(token) else {
            throw RESTError(.unauthorized("the access token is invalid or expired"))
        }
        var context = context
        context.userID = userID
        return try await next(request, context)
    }
}
