import Foundation
import Hummingbird
import MessengerAMQP
import MessengerContracts

/// `GET /api/threads` and `GET /api/threads/:id/messages` (protocol.md section 2), answered by
/// the messaging service for the verified caller. Cursors are opaque and passed through.
struct ThreadController {
    let rpc: RPCClient
    /// Who the caller is, for the routes that need a bearer token.
    let authentication: BearerAuthMiddleware

    static let defaultPageSize = 50

    func addRoutes(to router: Router<GatewayRequestContext>) {
        let threads = router.group("api/threads").add(middleware: self.authentication)
        threads.get { request, context in
            let query = FormQuery(request)
            let body = ListThreadsRequest(limit: try Self.limit(query), cursor: query["cursor"])
            return try JSONBody.response(
                try await self.call(MessagingMessage.listThreads, body, Page<ThreadSummary>.self, context))
        }
        threads.get(":id/messages") { request, context in
            guard let thread = context.parameters.get("id").flatMap(EntityID.init) else {
                throw RESTError(.notFound("no such thread"))
            }
            let query = FormQuery(request)
            let body = ListMessagesRequest(threadId: thread, limit: try Self.limit(query), before: query["before"])
            return try JSONBody.response(
                try await self.call(MessagingMessage.listMessages, body, Page<ChatMessage>.self, context))
        }
    }

    /// `limit` from the query: absent is the default; not an integer is 400 (out of range is the
    /// service's 422).
    private static func limit(_ query: FormQuery) throws -> Int {
        try query.wholeNumber("limit", orElse: "limit must be an integer from 1 to 100") ?? Self.defaultPageSize
    }

    private func call<Payload: Encodable & Sendable, Reply: Decodable & Sendable>(
        _ type: MessageType, _ payload: Payload, _ reply: Reply.Type, _ context: GatewayRequestContext
    ) async throws -> Reply {
        do {
            return try await self.rpc.call(
                type, to: .messaging, payload: payload, replyAs: reply, actor: context.requireUser())
        } catch let error as ServiceError {
            throw RESTError(error)
        }
    }
}
