import Foundation
import Hummingbird
import MessengerTokens

/// Verifies `Authorization: Bearer <access token>` locally (``AccessTokenCheck``: the cached
/// JWKS and the revoked sessions) and puts the user id in the context; anything else is 401,
/// and 503 while the gateway does not know the revoked sessions yet (it is starting) or cannot
/// fetch the key a token names. Each request that passes counts against its user's REST rate
/// (``RequestRateLimit``): past it, 429.
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext
    let tokens: AccessTokenCheck
    let requests: RequestRateLimit

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        guard let authorization = request.headers[.authorization],
            authorization.lowercased().hasPrefix("bearer ")
        else { throw RESTError(.unauthorized("a bearer token is required")) }
        // Until the revoked sessions are known, a revoked token would pass: the client retries.
        guard self.tokens.knowsRevocations else {
            throw RESTError(.unavailable("the gateway is starting; try again", retryAfter: 1))
        }
        let token = String(authorization.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
        let checked: VerifiedAccessToken?
        do {
            checked = try await self.tokens.verify(token)
        } catch {
            throw RESTError(.unavailable("the access token's key cannot be fetched now; try again", retryAfter: 1))
        }
        guard let verified = checked else {
            throw RESTError(.unauthorized("the access token is invalid, expired or revoked"))
        }
        do {
            try self.requests.admit(user: verified.userID.uuidString)
        } catch {
            throw RESTError(error)
        }
        var context = context
        context.userID = verified.userID
        context.loginSession = verified.session
        return try await next(request, context)
    }
}
