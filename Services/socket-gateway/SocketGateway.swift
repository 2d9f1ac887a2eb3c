import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MessengerContracts
import MessengerTokens
import NIOCore
import SocketIOProtocol
import SocketIOServer

/// The gateway's Socket.IO endpoint: clients authenticate with their access token (CONNECT
/// `auth.token`, or `Authorization: Bearer` on the handshake), join `user:<id>`, and send
/// commands that are answered through their ack as `{ok, data}` / `{ok: false, error}`.
struct SocketGateway {
    let server: SocketIOServer

    init(configuration: EngineConfiguration, tokens: AccessTokenCheck, logger: Logger) {
        self.server = SocketIOServer(
            configuration: configuration, logger: logger,
            // Until the revoked sessions are known, a revoked token would pass: no connection is
            // taken (503 to the handshake, which clients retry; until the forty-second session a
            // CONNECT_ERROR, after which socket.io-client 4 never reconnected by itself).
            isReady: { tokens.knowsRevocations },
            authenticate: { auth, handshake in
                // No session opens before (`isReady`); kept as the last line of defence.
                guard tokens.knowsRevocations else { return .failure(.unavailable) }
                let token = auth?["token"]?.stringValue ?? Self.bearer(handshake.headers)
                guard let token else { return .failure(.unauthorized) }
                let checked: VerifiedAccessToken?
                do {
                    checked = try await tokens.verify(token)
                } catch {
                    return .failure(.unavailable)
                }
                guard let verified = checked else { return .failure(.unauthorized) }
                if case .failure(let refusal) = ResumePoint.lastSeq(in: auth) { return .failure(refusal) }
                return .success(
                    SocketPrincipal(userID: EntityID(verified.userID).description, loginSession: verified.session))
            },
            unknownEvent: { _, _ in
                [Self.failure(.invalidArgument("unknown event"))]
            })
        // Liveness over the socket: echoes its first argument (binaries included) back.
        self.server.on("ping") { _, arguments in
            [.object(["ok": .bool(true), "data": .object(["pong": arguments.first ?? .object([:])])])]
        }
    }

    /// Adds the long-polling transport; the WebSocket one is served by ``httpServer(http1:)``.
    func addRoutes(to router: Router<GatewayRequestContext>) {
        self.server.engine.addPollingRoutes(to: router, path: "socket.io")
    }

    /// The public HTTP/1.1 server: REST and long-polling through the router, Socket.IO
    /// WebSockets straight to the engine.
    func httpServer(http1: HTTP1Channel.Configuration) -> HTTPServerBuilder {
        self.server.engine.httpServer(webSocketPath: "/socket.io/", http1: http1)
    }

    static func failure(_ error: ServiceError) -> JSONValue {
        var body: [String: JSONValue] = ["code": .string(error.code.rawValue), "message": .string(error.message)]
        if let retryAfter = error.retryAfter { body["retryAfter"] = .number(Double(retryAfter)) }
        return .object(["ok": .bool(false), "error": .object(body)])
    }

    private static func bearer(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization], value.lowercased().hasPrefix("bearer ") else { return nil }
        return String(value.dropFirst("bearer ".count)).trimmingCharacters(in: .whitespaces)
    }
}
