import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import MessengerTokens
import ServiceLifecycle

/// Wires the `auth` service: its schema, signing key, and the account and token RPCs.
func buildServices(context: ServiceContext) throws -> [any Service] {
    // Read before the broker connections start, so a bad value is the only line logged.
    let settings = try AuthSettings(environment: context.environment)
    var backend = try BackendService(
        service: .auth, schema: "auth", adminPortVariable: "AUTH_ADMIN_PORT", defaultAdminPort: 9101,
        migrations: AuthMigrations.all, context: context)
    let authenticator = Deferred<Authenticator>()
    let database = backend.database
    let logger = backend.logger
    let amqp = backend.amqp
    backend.topology = backend.topology.merged(with: AMQPTopology(exchanges: [.init(ExchangeName.events, kind: .topic)]))

    backend.router.on(AuthMessage.register, RegisterRequest.self) { request, context in
        try await authenticator.get().register(request, before: context.deadline)
    }
    backend.router.on(AuthMessage.login, LoginRequest.self) { request, context in
        try await authenticator.get().login(request, before: context.deadline)
    }
    backend.router.on(AuthMessage.refresh, RefreshTokenRequest.self) { request, context in
        try await authenticator.get().refresh(request, requestID: context.messageID, before: context.deadline)
    }
    backend.router.on(AuthMessage.logout, RefreshTokenRequest.self) { request, _ in try await authenticator.get().logout(request)
    }
    backend.router.on(AuthMessage.me, EmptyPayload.self) { _, context in try await authenticator.get().me(actor: context.actorID)
    }
    backend.router.on(AuthMessage.updateUser, UpdateUserRequest.self) { request, context in
        try await authenticator.get().updateUser(request, actor: context.actorID, before: context.deadline)
    }
    backend.router.on(AuthMessage.searchUsers, SearchUsersRequest.self) { request, context in
        try await authenticator.get().searchUsers(request, actor: context.actorID)
    }
    backend.router.on(AuthMessage.jwks, EmptyPayload.self) { _, _ in try authenticator.get().keySet }
    backend.router.on(AuthMessage.revokedSessions, RevokedSessionsRequest.self) { request, _ in
        try await authenticator.get().revokedSessions(request)
    }
    backend.router.on(AuthMessage.usersByID, UsersByIDRequest.self) { request, _ in
        try await authenticator.get().users(request)
    }
    let outbox = OutboxSignal()
    let relay = OutboxRelay(
        client: database, amqp: amqp, exchange: ExchangeName.events, signal: outbox, schema: "auth", logger: logger)

    let revocations = SessionRevocations(client: database, accessTokenLifetime: settings.accessTokenLifetime, logger: logger)
    let pruner = AuthPruner(
        client: database, revocations: revocations, loginWindow: settings.throttle.window,
        registrationWindow: settings.registrations.window, outbox: outbox, logger: logger)

    return backend.services(
        workers: [
            PeriodicJob("auth pruning", every: settings.pruneInterval, logger: logger) {
                let count = try await pruner.prune()
                if count > 0 { logger.info("pruned expired sessions, tokens and login counters", metadata: ["rows": "\(count)"]) }
            },
            PeriodicJob(
                "ending spared sessions", every: min(settings.pruneInterval, AuthPruner.sparedSessionsInterval), logger: logger
            ) {
                let count = try await pruner.endSparedSessions()
                if count > 0 { logger.info("ended sessions a password change spared", metadata: ["sessions": "\(count)"]) }
            },
        ],
        relays: [relay],
        prepare: {
            let key = try await SigningKeyStore.load(settings.keySource, client: database, logger: logger)
            let keySet = JSONWebKeySet(keys: [key.publicJWK] + settings.previousPublicKeys.filter { $0.kid != key.kid })
            authenticator.set(
                Authenticator(
                    users: PostgresUserRepository(client: database, outbox: outbox, revocations: revocations, logger: logger),
                    refreshTokens: RefreshTokenStore(
                        client: database, lifetime: settings.refreshTokenLifetime, revocations: revocations, outbox: outbox,
                        logger: logger),
                    throttle: LoginThrottle(client: database, limits: settings.throttle, logger: logger),
                    registrations: RegistrationThrottle(client: database, limits: settings.registrations, logger: logger),
                    hasher: try await PasswordHasher(cost: settings.bcryptCost),
                    signer: await AccessTokenSigner(
                        key: key, audience: settings.audience, lifetime: settings.accessTokenLifetime),
                    keySet: keySet, maximumDisplayNameLength: settings.maximumDisplayNameLength))
            // Gateways that started before this instance pick up its keys from this event.
            try await amqp.publish(
                AMQPMessage(
                    exchange: ExchangeName.events, routingKey: AuthMessage.keysChanged.rawValue,
                    body: try Envelope(type: AuthMessage.keysChanged, data: keySet).encoded(),
                    properties: AMQPProperties(messageID: UUID.v7().lowercasedText, type: AuthMessage.keysChanged.rawValue)))
            logger.info("signing key ready", metadata: ["kid": "\(key.kid)", "verification_keys": "\(keySet.keys.count)"])
        })
}
