import Hummingbird
import MessengerAMQP
import MessengerContracts
import MessengerRedis
import MessengerServiceKit
import NIOCore
import ServiceLifecycle
import SocketIOProtocol

/// Wires the gateway: broker connection and RPC client, the access token check, Redis, the
/// public HTTP server (REST) and the admin server.
func buildServices(context: ServiceContext) throws -> [any Service] {
    let settings = try GatewaySettings(environment: context.environment)
    var logger = context.logger
    logger[metadataKey: LogKey.instance] = .string(settings.service.instanceID)

    let amqp = AMQPConnection(configuration: settings.service.amqp, logger: logger)
    let rpc = RPCClient(
        connection: amqp, instanceName: settings.service.instanceID, timeout: settings.service.rpcTimeout,
        replyQueueType: settings.service.queueType, logger: logger)
    let redis = RedisClient(configuration: settings.redis, logger: logger)
    // This gateway's own fan-out comes back on its subscription; it is dropped on the
    // subscriber's thread (its sockets had it at once, see RedisFanOut).
    let instanceID = settings.service.instanceID
    let subscriber = RedisSubscriber(configuration: settings.redis, logger: logger) { payload in
        EmitterMessage.isPublished(by: instanceID, payload)
    }
    let tokens = AccessTokenCheck(audience: settings.audience, rpc: rpc, logger: logger)
    let socketGateway = SocketGateway(configuration: settings.engine, tokens: tokens, logger: logger)
    let streams = EventStreams(rpc: rpc, logger: logger)
    socketGateway.server.onConnect { socket, auth in
        GatewayMetrics.connectedSockets.increment()
        // A revocation applied between this socket's token check and its joining `user:<id>`
        // found no socket to disconnect; the session is in the set by then (it is added before
        // the room is searched), so the socket goes here.
        if let session = socket.loginSession, tokens.revoked.contains(session) {
            Task { await socket.disconnect() }
            return
        }
        // Checked by the authentication that let this socket in.
        let lastSeq = (try? ResumePoint.lastSeq(in: auth).get()) ?? 0
        streams.connected(socket, lastSeq: lastSeq)
    }
    socketGateway.server.onDisconnect { socket in
        GatewayMetrics.connectedSockets.decrement()
        streams.disconnected(socket)
    }
    let fanOut = RedisFanOut(
        uid: settings.service.instanceID, redis: redis, subscriber: subscriber,
        local: LocalDelivery(server: socketGateway.server, streams: streams), logger: logger)
    SocketCommands(
        rpc: rpc, fanOut: fanOut, rateLimit: CommandRateLimit(settings: settings.commandRate),
        isRevoked: { socket in socket.loginSession.map { tokens.revoked.hasEnded($0) } ?? false },
        acknowledged: { socket, seq in await streams.acknowledged(socket, through: seq) }, logger: logger
    )
    .register(on: socketGateway.server)
    let ready = ReadyFlag()
    // The admin port's `/readyz` is this process's own readiness, for a load balancer: a gateway
    // is worth routing to while one service behind it is down (its other routes work). The
    // public port's is the contract's, 200 when every dependency answers, the services too
    // (``ServiceReachability``): what a client or a test harness waits for.
    let checks: [ReadinessCheck] = [.started(ready), .amqp(amqp), .redis(redis), .redisSubscriber(subscriber)]
    let publicChecks = checks + ServiceReachability(rpc: rpc).checks
    let authEvents = AuthEventListener(
        amqp: amqp, tokens: tokens, sockets: socketGateway.server, instanceID: instanceID,
        catchUpInterval: settings.revokedSessionsSync, logger: logger)
    let pushTopology = PushConsumer.topology(queueArguments: settings.service.durableQueueArguments)

    let startup = ServiceStartup(
        ready: ready, logger: logger,
        readyMessage: "socket-gateway ready; listening on http://\(settings.host):\(settings.port)",
        steps: {
            // Bound before the first fetch of the revoked sessions: none falls between the two.
            try await amqp.declare(AuthEventListener.topology(instanceID: instanceID))
            try await tokens.refresh()
            try await authEvents.catchUp()
            try await amqp.declare(pushTopology)
        },
        workers: [
            authEvents,
            fanOut,
            PushConsumer(amqp: amqp, fanOut: fanOut, prefetch: settings.service.prefetch, logger: logger),
            UnacknowledgedEventsSweep(streams: streams, after: settings.redeliveryAfter),
        ])

    // HEAD is answered as GET on every GET route (RFC 9110, 9.3.2); NIO's encoder leaves the body out.
    let router = Router(context: GatewayRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: MetricsMiddleware())
    if let cors = RESTCORSMiddleware<GatewayRequestContext>(origin: settings.engine.corsOrigin, enginePath: "/socket.io") {
        router.add(middleware: cors)
    }
    router.add(middleware: APICacheMiddleware())
    router.add(middleware: CorrelationMiddleware())
    router.add(middleware: ErrorShapeMiddleware())
    AdminServer.addHealthRoutes(to: router, checks: publicChecks)
    let authentication = BearerAuthMiddleware(tokens: tokens, requests: RequestRateLimit(settings: settings.requestRate))
    UserController(rpc: rpc, authentication: authentication, trustProxy: settings.trustProxy).addRoutes(to: router)
    ThreadController(rpc: rpc, authentication: authentication).addRoutes(to: router)
    MediaController(
        rpc: rpc, authentication: authentication, directory: settings.mediaDirectory, maximumUpload: settings.maximumUpload,
        bodyTimeout: settings.uploadBodyTimeout
    )
    .addRoutes(to: router)
    try OpenAPIController().addRoutes(to: router)
    socketGateway.addRoutes(to: router)
    let publicServer = Application(
        router: router,
        server: socketGateway.httpServer(http1: .init(idleTimeout: TimeAmount(settings.httpIdleTimeout))),
        // A reconnect storm brings thousands of connections at once: a long accept queue keeps
        // them from waiting out SYN retransmits (the kernel caps it at somaxconn).
        configuration: .init(address: .hostname(settings.host, port: settings.port), backlog: 4096), logger: logger)

    let admin = AdminServer.make(
        host: settings.service.adminHost, port: settings.service.adminPort, checks: checks, registry: context.registry,
        logger: logger
    ) { router in
        PingController(rpc: rpc).addRoutes(to: router)
    }
    // Stopped before the public server: WebSocket clients get a close and reconnect elsewhere.
    let sessions = EngineSessionsCloser(server: socketGateway.server)
    return [amqp, redis, subscriber, rpc, startup, publicServer, sessions, admin]
}
