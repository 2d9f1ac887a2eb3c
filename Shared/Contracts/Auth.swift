import Foundation

/// The auth service's RPCs and events.
public enum AuthMessage {
    public static let register: MessageType = "auth.register.v1"
    public static let login: MessageType = "auth.login.v1"
    public static let refresh: MessageType = "auth.refresh.v1"
    public static let logout: MessageType = "auth.logout.v1"
    public static let me: MessageType = "auth.me.v1"
    public static let updateUser: MessageType = "auth.update_user.v1"
    public static let searchUsers: MessageType = "auth.search_users.v1"
    public static let jwks: MessageType = "auth.jwks.v1"
    /// Users by id, for services that keep a read model and meet an id it lacks.
    public static let usersByID: MessageType = "auth.users_by_id.v1"
    /// Event: the set of verification keys changed (published on `messenger.events`).
    public static let keysChanged: MessageType = "auth.keys_changed.v1"
    /// Event (`{user}`, no email): a user registered. From auth's outbox.
    public static let userCreated: MessageType = "auth.user_created.v1"
    /// Event (`{user}`, no email): a user's display data changed. From auth's outbox.
    public static let userUpdated: MessageType = "auth.user_updated.v1"
    /// Event (``RevokedSessions``): login sessions ended by a logout, a refresh token's reuse or
    /// a password change. From auth's outbox; gateways refuse their access tokens and close
    /// their sockets.
    public static let sessionsRevoked: MessageType = "auth.sessions_revoked.v1"
    /// The sessions revoked whose access tokens may still be unexpired, as a
    /// ``RevokedSessionList``: what a gateway that starts, or missed events, needs to know.
    public static let revokedSessions: MessageType = "auth.revoked_sessions.v1"
}

/// Login sessions (refresh token families, the `sid` of their access tokens) of one user that
/// were revoked. No access token of them is valid after `until`, so a gateway can forget them
/// then.
public struct RevokedSessions: Codable, Sendable, Equatable {
    public var userId: EntityID
    public var sessionIds: [EntityID]
    public var until: Date

    public init(userId: EntityID, sessionIds: [EntityID], until: Date) {
        self.userId = userId
        self.sessionIds = sessionIds
        self.until = until
    }
}

/// `auth.revoked_sessions.v1`'s request: `{}` at a gateway's start, then where its last answer
/// left off.
public struct RevokedSessionsRequest: Codable, Sendable, Equatable {
    /// The ``RevokedSessionList/next`` of the gateway's last answer: the sessions ended since
    /// are listed too, those whose tokens all expired included, for a gateway that asked last
    /// longer ago than a token lives (cut off from the broker) to close their sockets.
    public var endedSince: String?

    public init(endedSince: String? = nil) { self.endedSince = endedSince }
}

/// `{items: [RevokedSessions], next, more}`, the answer to `auth.revoked_sessions.v1`.
public struct RevokedSessionList: Codable, Sendable {
    public var items: [RevokedSessions]
    /// Where the next request starts (``RevokedSessionsRequest/endedSince``), a place only auth
    /// reads; nil from an auth that keeps none (before the forty-eighth session).
    public var next: String?
    /// More sessions ended since the request's place than one answer holds: ask again from
    /// ``next`` at once.
    public var more: Bool?

    public init(items: [RevokedSessions], next: String? = nil, more: Bool? = nil) {
        self.items = items
        self.next = next
        self.more = more
    }
}

/// `auth.users_by_id.v1`: answered with a ``UserList`` (no emails) of those that exist.
public struct UsersByIDRequest: Codable, Sendable {
    public var ids: [EntityID]
    public init(ids: [EntityID]) { self.ids = ids }
}

/// The `User` resource of the client contract. `email` is only shown to the user themself.
public struct User: Codable, Sendable, Hashable {
    public var id: EntityID
    public var username: String
    public var displayName: String
    public var createdAt: Date
    public var email: String?

    public init(id: EntityID, username: String, displayName: String, createdAt: Date, email: String?) {
        self.id = id
        self.username = username
        self.displayName = displayName
        self.createdAt = createdAt
        self.email = email
    }
}

/// `{user}`.
public struct UserEnvelope: Codable, Sendable {
    public var user: User
    public init(user: User) { self.user = user }
}

/// `{items: [user]}`.
public struct UserList: Codable, Sendable {
    public var items: [User]
    public init(items: [User]) { self.items = items }
}

/// `POST /api/users`; the gateway adds the client's address for the per-address limit.
public struct RegisterRequest: Codable, Sendable {
    public var username: String
    public var email: String
    public var password: String
    public var displayName: String?
    /// The client's address as the gateway saw it (the per-address limit); never the client's.
    public var clientAddress: String?

    public init(
        username: String, email: String, password: String, displayName: String? = nil, clientAddress: String? = nil
    ) {
        self.username = username
        self.email = email
        self.password = password
        self.displayName = displayName
        self.clientAddress = clientAddress
    }
}

/// `POST /api/login`; the gateway adds the client's address for throttling.
public struct LoginRequest: Codable, Sendable {
    public var login: String
    public var password: String
    /// The client's address as the gateway saw it (the per-address throttle); never the client's.
    public var clientAddress: String?

    public init(login: String, password: String, clientAddress: String?) {
        self.login = login
        self.password = password
        self.clientAddress = clientAddress
    }
}

/// `POST /api/token/refresh` and `POST /api/logout`.
public struct RefreshTokenRequest: Codable, Sendable {
    public var refreshToken: String
}

/// The answer to login and refresh.
public struct TokenPair: Codable, Sendable {
    public var accessToken: String
    public var refreshToken: String
    public var tokenType: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
    public var user: User

    public init(accessToken: String, refreshToken: String, expiresIn: Int, user: User) {
        self.accessToken = accessToken
        self.refreshToken = refreshToken
        self.tokenType = "Bearer"
        self.expiresIn = expiresIn
        self.user = user
    }
}

/// `PATCH /api/users/:id`; `userId` comes from the path, the caller and `callerSession` from
/// the verified access token (never from the body).
public struct UpdateUserRequest: Codable, Sendable {
    public var userId: EntityID
    public var displayName: String?
    public var password: String?
    public var currentPassword: String?
    /// The login session (`sid`) of the access token that asks; a password change leaves that
    /// token valid until it expires.
    public var callerSession: EntityID?
    /// The client's address, as the gateway saw it: a password change's check of
    /// `currentPassword` is throttled like a login from there.
    public var clientAddress: String?

    public init(
        userId: EntityID, displayName: String?, password: String?, currentPassword: String?, callerSession: EntityID? = nil,
        clientAddress: String? = nil
    ) {
        self.userId = userId
        self.displayName = displayName
        self.password = password
        self.currentPassword = currentPassword
        self.callerSession = callerSession
        self.clientAddress = clientAddress
    }
}

/// `GET /api/users?query=&limit=`.
public struct SearchUsersRequest: Codable, Sendable {
    public var query: String
    public var limit: Int

    public init(query: String, limit: Int) {
        self.query = query
        self.limit = limit
    }
}

/// A JSON Web Key Set with public keys only.
public struct JSONWebKeySet: Codable, Sendable, Hashable {
    public var keys: [JSONWebKey]
    public init(keys: [JSONWebKey]) { self.keys = keys }
}

/// One public Ed25519 key (`kty` OKP, `crv` Ed25519, `x` base64url of the raw key).
public struct JSONWebKey: Codable, Sendable, Hashable {
    public var kty: String
    public var crv: String
    public var x: String
    public var kid: String
    public var alg: String
    public var use: String

    public init(x: String, kid: String) {
        self.kty = "OKP"
        self.crv = "Ed25519"
        self.x = x
        self.kid = kid
        self.alg = "EdDSA"
        self.use = "sig"
    }
}
