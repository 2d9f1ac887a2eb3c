import HTTPTypes
import Hummingbird

/// Marks every `/api` response `Cache-Control: no-store` unless its route chose otherwise:
/// they hold tokens (login, refresh), the caller's email (`/api/users/me`) and private
/// conversations, none of which a browser or proxy may keep (RFC 6749 section 5.1 asks it of
/// token responses). Media files (`/media`) set their own caching. Errors are made into
/// responses outside the middleware chain, so ``RESTError`` marks them itself.
struct APICacheMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response
    {
        var response = try await next(request, context)
        if request.uri.path.hasPrefix("/api/"), response.headers[.cacheControl] == nil {
            response.headers[.cacheControl] = "no-store"
        }
        return response
    }
}
