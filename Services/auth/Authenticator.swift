import Foundation
import Logging
import MessengerContracts
import MessengerTokens

/// What the auth service does: accounts, logins, token rotation. Each method is one RPC.
struct Authenticator: Sendable {
    let users: any UserRepository
    let refreshTokens: RefreshTokenStore
    let throttle: LoginThrottle
    let registrations: RegistrationThrottle
    let hasher: PasswordHasher
    let signer: AccessTokenSigner
    let keySet: JSONWebKeySet
    /// Code points in a display name (`DISPLAY_NAME_MAX_LENGTH`).
    var maximumDisplayNameLength = Validation.defaultMaximumDisplayNameLength

    private var expiresIn: Int { Int(self.signer.lifetime.components.seconds) }

    private func displayName(_ raw: String) throws -> String {
        try Validation.displayName(raw, maximumLength: self.maximumDisplayNameLength)
    }

    func register(_ request: RegisterRequest, before deadline: ContinuousClock.Instant?) async throws -> UserEnvelope {
        let username = try Validation.username(request.username)
        let email = try Validation.email(request.email)
        try Validation.password(request.password)
        let displayName = try request.displayName.map(self.displayName) ?? username
        // A name or address taken costs no bcrypt hash: until the forty-fourth session each
        // such attempt hashed first, and a client repeating one (a 409 every time) kept the
        // threads that logins share busy (a review). The insert still decides a race.
        try await self.users.ensureFree(username: username, email: email)
        // The place is taken before the hash. A registration that hashed and then lost a race
        // for its name keeps it, or concurrent attempts at one new name would cost a hash each
        // and count once (the forty-seventh session's review); any other failure gives it back
        // (an overloaded auth that answers 503 does not spend the address's registrations).
        try await self.registrations.reserve(address: request.clientAddress)
        do {
            let passwordHash = try await Self.unavailableIfGaveUp {
                try await self.hasher.hash(request.password, before: deadline)
            }
            let record = UserRecord(
                id: .v7(), username: username, email: email, displayName: displayName, passwordHash: passwordHash,
                createdAt: .nowInWholeMilliseconds())
            try await self.users.create(record, before: deadline)
            return UserEnvelope(user: record.resource(includingEmail: true))
        } catch let taken as ServiceError where taken.code == .conflict {
            throw taken
        } catch {
            try? await self.registrations.giveBack(address: request.clientAddress)
            throw error
        }
    }

    /// The same answer, after the same bcrypt work, for an unknown login and a wrong password.
    func login(_ request: LoginRequest, before deadline: ContinuousClock.Instant?) async throws -> TokenPair {
        let login = Validation.login(request.login)
        // In a burst, a login refused here costs no statement at all.
        try await Self.unavailableIfGaveUp { try self.hasher.ensureACheckCanEnd(before: deadline) }
        // No account has a login that long or with a NUL in it (PostgreSQL's text cannot hold
        // one): such a login is unknown without asking the database.
        let user = Validation.canBeLogin(login) ? try await self.users.find(login: login) : nil
        let key = Self.throttleKey(userID: user?.id, login: login)
        try await self.throttle.reserveAttempt(login: key, address: request.clientAddress)
        let matches = try await self.check(
            request.password, against: user?.passwordHash, login: key, address: request.clientAddress, before: deadline)
        guard matches, var user else { throw ServiceError.unauthorized("invalid login or password") }
        // Recorded as soon as the password is known right: a login whose session could not be
        // stored after it (a busy pool, a lock timeout, a failover) was counted as a failed one
        // until the sixty-second session, and five such faults in a window refused the owner's
        // logins from a new address (a review).
        try await self.throttle.recordSuccess(login: key, address: request.clientAddress)
        var session = try await self.refreshTokens.issue(userID: user.id, whilePasswordHashIs: user.passwordHash)
        if session == nil, let now = try await self.users.find(id: user.id), now.passwordHash != user.passwordHash,
            try await Self.unavailableIfGaveUp({
                try await self.hasher.verify(request.password, against: now.passwordHash, before: deadline)
            })
        {
            // The hash changed after the check: another login of the account hashed the same
            // password again at today's cost (see below). A password change would not verify.
            user = now
            session = try await self.refreshTokens.issue(userID: user.id, whilePasswordHashIs: user.passwordHash)
        }
        guard let session else { throw ServiceError.unauthorized("invalid login or password") }
        if self.hasher.needsRehash(user.passwordHash, password: request.password) {
            // Once per account and cost: skipped (and tried at the next login) when it cannot end
            // before the caller stops waiting, or when the database fails.
            if let hash = try? await self.hasher.hash(request.password, before: deadline) {
                try? await self.users.rehashPassword(id: user.id, replacing: user.passwordHash, with: hash)
            }
        }
        return try await self.tokenPair(for: user, refreshToken: session.token, session: session.family)
    }

    /// `requestID`: the RPC request's id, which tells a request delivered again from a reuse.
    func refresh(
        _ request: RefreshTokenRequest, requestID: UUID, before deadline: ContinuousClock.Instant?
    ) async throws -> TokenPair {
        switch try await self.refreshTokens.rotate(request.refreshToken, request: requestID, before: deadline) {
        case .rotated(let user, let newToken, let family):
            return try await self.tokenPair(for: user, refreshToken: newToken, session: family)
        case .repeated:
            // A copy of the request that spent the token, after an answer to it was used (so it
            // reached the caller, and this one is dropped: its correlation id was answered), or
            // too late or too often to be answered with another successor.
            throw ServiceError.unauthorized("this refresh was answered already")
        case .reused, .invalid:
            throw ServiceError.unauthorized("invalid refresh token")
        }
    }

    /// The sessions revoked whose access tokens may still be unexpired (gateways ask at start),
    /// and those ended since `request`'s place (``SessionRevocations/recent(endedSince:)``).
    func revokedSessions(_ request: RevokedSessionsRequest) async throws -> RevokedSessionList {
        try await self.refreshTokens.revocations.recent(endedSince: request.endedSince)
    }

    func logout(_ request: RefreshTokenRequest) async throws -> EmptyPayload {
        try await self.refreshTokens.revokeFamily(of: request.refreshToken)
        return EmptyPayload()
    }

    func me(actor: UUID?) async throws -> UserEnvelope {
        UserEnvelope(user: try await self.caller(actor).resource(includingEmail: true))
    }

    func updateUser(
        _ request: UpdateUserRequest, actor: UUID?, before deadline: ContinuousClock.Instant?
    ) async throws -> UserEnvelope {
        let caller = try await self.caller(actor)
        guard request.userId.uuid == caller.id else { throw ServiceError.forbidden("you can only change your own account") }
        let displayName = try request.displayName.map(self.displayName)
        var updated = caller
        if let password = request.password {
            try Validation.password(password)
            guard let current = request.currentPassword else {
                throw ServiceError.forbidden("currentPassword is required to change the password")
            }
            // A wrong currentPassword counts as a failed login of the account from the client's
            // address: a stolen access token must not buy unlimited guesses at the password.
            // The address lets an owner change it from where they logged in while someone else
            // keeps the account over its failures (without it, until the fifty-seventh session,
            // the change was refused like a login from an unknown address).
            let key = Self.throttleKey(userID: caller.id, login: caller.username)
            let address = request.clientAddress
            try await self.throttle.reserveAttempt(login: key, address: address)
            guard try await self.check(current, against: caller.passwordHash, login: key, address: address, before: deadline)
            else {
                throw ServiceError.forbidden("currentPassword is wrong")
            }
            try await self.throttle.recordSuccess(login: key, address: address)
            let hash = try await Self.unavailableIfGaveUp { try await self.hasher.hash(password, before: deadline) }
            var checked = caller.passwordHash
            var record = try await self.users.updatePassword(
                id: caller.id, replacing: checked, with: hash, displayName: displayName, sparing: request.callerSession?.uuid,
                before: deadline)
            if record == nil, let now = try await self.users.find(id: caller.id), now.passwordHash != checked,
                try await Self.unavailableIfGaveUp({
                    try await self.hasher.verify(current, against: now.passwordHash, before: deadline)
                })
            {
                // A login hashed the same password again at today's cost after the check.
                checked = now.passwordHash
                record = try await self.users.updatePassword(
                    id: caller.id, replacing: checked, with: hash, displayName: displayName,
                    sparing: request.callerSession?.uuid, before: deadline)
            }
            // Otherwise another change of the password committed after the check.
            guard let record else { throw ServiceError.forbidden("currentPassword is wrong") }
            updated = record
        } else if let displayName {
            guard let record = try await self.users.updateDisplayName(id: caller.id, displayName: displayName) else {
                throw ServiceError.unauthorized()
            }
            updated = record
        }
        return UserEnvelope(user: updated.resource(includingEmail: true))
    }

    func searchUsers(_ request: SearchUsersRequest, actor: UUID?) async throws -> UserList {
        _ = try await self.caller(actor)
        guard (1...50).contains(request.limit) else { throw ServiceError.invalidArgument("limit must be 1 to 50") }
        let query = try Validation.searchQuery(request.query)
        let found = try await self.users.search(prefix: query, limit: request.limit)
        return UserList(items: found.map { $0.resource(includingEmail: false) })
    }

    /// Users by id (no emails), for other services' read models. Only services call it.
    func users(_ request: UsersByIDRequest) async throws -> UserList {
        guard request.ids.count <= 1000 else { throw ServiceError.invalidArgument("ids: at most 1000") }
        let found = try await self.users.find(ids: request.ids.map(\.uuid))
        return UserList(items: found.map { $0.resource(includingEmail: false) })
    }

    /// What the throttle counts an attempt against: the account when the login names one, so
    /// that its username and its email share one counter (each had its own, which doubled the
    /// guesses per account), and the login as typed otherwise.
    static func throttleKey(userID: UUID?, login: String) -> String {
        userID.map { "user:\($0.lowercasedText)" } ?? login
    }

    /// Checks a password for an attempt that holds its places in the throttle. An attempt whose
    /// caller stopped waiting before the check could start gives them back: it guessed nothing.
    private func check(
        _ password: String, against hash: String?, login: String, address: String?,
        before deadline: ContinuousClock.Instant?
    ) async throws -> Bool {
        do {
            return try await self.hasher.verify(password, against: hash, before: deadline)
        } catch let gaveUp as PasswordHasher.CallerGaveUp {
            try await self.throttle.giveBackAttempt(login: login, address: address)
            throw Self.unavailable(gaveUp)
        }
    }

    /// `body`, with a password check skipped because its caller stopped waiting answered as
    /// ``unavailable(_:)``.
    private static func unavailableIfGaveUp<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let gaveUp as PasswordHasher.CallerGaveUp {
            throw Self.unavailable(gaveUp)
        }
    }

    /// The answer to a request whose password check was not done because its caller would stop
    /// waiting first, with when to try again: when the line ahead would let a check start. A
    /// request refused as it arrived gets it in time; one skipped at its turn goes unread, unless
    /// the caller's clock ran slow.
    private static func unavailable(_ gaveUp: PasswordHasher.CallerGaveUp) -> ServiceError {
        .unavailable("the password check would wait too long for its turn; try again", retryAfter: gaveUp.retryAfterSeconds)
    }

    /// The authenticated caller; a token for a user that no longer exists is `unauthorized`.
    private func caller(_ actor: UUID?) async throws -> UserRecord {
        guard let actor, let user = try await self.users.find(id: actor) else { throw ServiceError.unauthorized() }
        return user
    }

    /// The access token names the login session (`sid`), by which a logout, a reuse of its
    /// refresh token or a password change revokes it.
    private func tokenPair(for user: UserRecord, refreshToken: String, session: UUID) async throws -> TokenPair {
        TokenPair(
            accessToken: try await self.signer.sign(userID: user.id, session: session), refreshToken: refreshToken,
            expiresIn: self.expiresIn,
            user: user.resource(includingEmail: true))
    }
}
