import Foundation
import Hummingbird
import MessengerAMQP
import MessengerContracts

/// The REST routes for users and tokens (protocol.md section 2), each forwarded to the auth
/// service as an RPC. The caller's id comes only from the verified bearer token.
struct UserController {
    let rpc: RPCClient
    /// Who the caller is, for the routes that need a bearer token.
    let authentication: BearerAuthMiddleware
    /// Whether `X-Forwarded-For` names the client (behind a trusted proxy only).
    let trustProxy: Bool

    func addRoutes(to router: Router<GatewayRequestContext>) {
        let api = router.group("api")
        api.post("users") { request, context in
            // The contract's fields only, as for a login.
            struct Registration: Decodable {
                var username: String
                var email: String
                var password: String
                var displayName: String?
            }
            let registration = try await JSONBody.decode(Registration.self, from: request)
            let body = RegisterRequest(
                username: registration.username, email: registration.email, password: registration.password,
                displayName: registration.displayName, clientAddress: self.clientAddress(request, context))
            let reply = try await self.call(AuthMessage.register, body, UserEnvelope.self, request, context)
            return try JSONBody.response(reply, status: .created)
        }
        api.post("login") { request, context in
            // The contract's fields only: a client's `clientAddress` is an unknown field, ignored
            // (decoded as the RPC's own, a number there was 400).
            struct Credentials: Decodable {
                var login: String
                var password: String
            }
            let credentials = try await JSONBody.decode(Credentials.self, from: request)
            let body = LoginRequest(
                login: credentials.login, password: credentials.password, clientAddress: self.clientAddress(request, context))
            return try JSONBody.response(try await self.call(AuthMessage.login, body, TokenPair.self, request, context))
        }
        api.post("token/refresh") { request, context in
            let body = try await JSONBody.decode(RefreshTokenRequest.self, from: request)
            return try JSONBody.response(try await self.call(AuthMessage.refresh, body, TokenPair.self, request, context))
        }
        api.post("logout") { request, context in
            let body = try await JSONBody.decode(RefreshTokenRequest.self, from: request)
            _ = try await self.call(AuthMessage.logout, body, EmptyPayload.self, request, context)
            return Response(status: .noContent)
        }

        let authenticated = api.group().add(middleware: self.authentication)
        authenticated.get("users/me") { request, context in
            try JSONBody.response(try await self.call(AuthMessage.me, EmptyPayload(), UserEnvelope.self, request, context))
        }
        authenticated.patch("users/:id") { request, context in
            // Another user's id, or not a user id at all, is forbidden before the body is read:
            // a bad body for someone else's account is still 403 (auth checks it again).
            guard let id = context.parameters.get("id").flatMap(EntityID.init), id.uuid == context.userID else {
                throw RESTError(.forbidden("you can only change your own account"))
            }
            return try await self.updateUser(id, request, context)
        }
        // `users/me` is the caller, as for GET (the router would not take `me` as an `:id`).
        authenticated.patch("users/me") { request, context in
            guard let caller = context.userID else { throw RESTError(.unauthorized()) }
            return try await self.updateUser(EntityID(caller), request, context)
        }
        // A user by id (the email only to the user themself): clients know a thread's members by
        // their ids alone.
        authenticated.get("users/:id") { request, context in
            guard let id = context.parameters.get("id").flatMap(EntityID.init) else {
                throw RESTError(.notFound("no such user"))
            }
            if id.uuid == context.userID {
                return try JSONBody.response(
                    try await self.call(AuthMessage.me, EmptyPayload(), UserEnvelope.self, request, context))
            }
            guard let user = try await self.users(ids: [id], request, context).first else {
                throw RESTError(.notFound("no such user"))
            }
            return try JSONBody.response(UserEnvelope(user: user))
        }
        authenticated.get("users") { request, context in
            let query = FormQuery(request)
            if let ids = query["ids"] {
                guard query["query"] == nil else { throw RESTError.malformed("query and ids cannot be used together") }
                return try JSONBody.response(UserList(items: try await self.users(ids: Self.ids(ids), request, context)))
            }
            // Not an integer is 400, as for the thread lists; out of range is auth's 422.
            let limit = try query.wholeNumber("limit", orElse: "limit must be an integer from 1 to 50") ?? 20
            let body = SearchUsersRequest(query: query["query"] ?? "", limit: limit)
            return try JSONBody.response(try await self.call(AuthMessage.searchUsers, body, UserList.self, request, context))
        }

        router.get(".well-known/jwks.json") { _, _ in
            try JSONBody.response(self.authentication.tokens.verifier.keySet)
        }
    }

    /// `ids=<id>,<id>,...`: 1 to 100 user ids, repeats dropped.
    private static func ids(_ text: String) throws -> [EntityID] {
        var ids: [EntityID] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let id = EntityID(part.trimmingCharacters(in: .whitespaces)) else {
                throw RESTError.malformed("ids must be user ids separated by commas")
            }
            if !ids.contains(id) { ids.append(id) }
        }
        guard ids.count <= Self.maximumLookup else {
            throw RESTError(.invalidArgument("ids must name 1 to \(Self.maximumLookup) users"))
        }
        return ids
    }

    static let maximumLookup = 100

    /// The users of `ids` that exist (no emails), in the order of `ids`.
    private func users(ids: [EntityID], _ request: Request, _ context: GatewayRequestContext) async throws -> [User] {
        let found = try await self.call(AuthMessage.usersByID, UsersByIDRequest(ids: ids), UserList.self, request, context)
        let byID = Dictionary(found.items.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        return ids.compactMap { byID[$0] }
    }

    private func updateUser(_ id: EntityID, _ request: Request, _ context: GatewayRequestContext) async throws -> Response {
        struct Changes: Decodable {
            var displayName: String?
            var password: String?
            var currentPassword: String?
        }
        let changes = try await JSONBody.decode(Changes.self, from: request)
        let body = UpdateUserRequest(
            userId: id, displayName: changes.displayName, password: changes.password, currentPassword: changes.currentPassword,
            callerSession: context.loginSession.map(EntityID.init), clientAddress: self.clientAddress(request, context))
        return try JSONBody.response(try await self.call(AuthMessage.updateUser, body, UserEnvelope.self, request, context))
    }

    private func call<Payload: Encodable & Sendable, Reply: Decodable & Sendable>(
        _ type: MessageType, _ payload: Payload, _ reply: Reply.Type, _ request: Request, _ context: GatewayRequestContext
    ) async throws -> Reply {
        do {
            return try await self.rpc.call(
                type, to: .auth, payload: payload, replyAs: reply, actor: context.userID)
        } catch let error as ServiceError {
            throw RESTError(error)
        }
    }

    private func clientAddress(_ request: Request, _ context: GatewayRequestContext) -> String? {
        if self.trustProxy, let forwarded = request.headers[.init("X-Forwarded-For")!] {
            return forwarded.split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return context.remoteAddress?.ipAddress
    }
}
