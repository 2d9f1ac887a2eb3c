import Foundation
import Hummingbird
import NIOCore

/// The request context of the public listener: the client's address, and the user id once the
/// bearer token was verified.
struct GatewayRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    /// Set by ``BearerAuthMiddleware`` from a verified access token; never from the request body.
    var userID: UUID?
    /// The login session (`sid`) of that token, when it names one.
    var loginSession: UUID?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }

    /// The verified caller, or `unauthorized`.
    func requireUser() throws -> UUID {
        guard let userID else { throw RESTError(.unauthorized()) }
        return userID
    }
}
