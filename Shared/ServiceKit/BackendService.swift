import Logging
import MessengerAMQP
import MessengerContracts
import MessengerPostgres
import PostgresNIO
import ServiceLifecycle

/// A service that owns a PostgreSQL schema and answers RPCs on its queue (auth, messaging,
/// media, delivery): the parts they all have, wired the same way.
///
/// Start-up order: PostgreSQL pool, broker connection, then migrations and topology, then the RPC
/// server; the admin server answers from the first moment (`/readyz` is 503 until start-up is
/// done). Shutdown runs in reverse: the admin server, the RPC server (stops consuming, finishes
/// what it holds), the broker connection (waits for confirms), the pool.
public struct BackendService {
    public let settings: ServiceSettings
    public let database: Database
    public let amqp: AMQPConnection
    public let logger: Logger
    public var router = RPCRouter()
    public var topology: AMQPTopology
    private let service: ServiceName
    private let schema: String
    private let migrations: [Migration]
    private let context: ServiceContext

    /// Reads the shared settings and `DATABASE_URL`, and prepares (without connecting) the pool
    /// and the broker connection. The router starts with the service's ping handler.
    /// `genericPlans`: see ``DatabaseConfiguration/genericPlans``. `boundsLockWaits`: no lock is
    /// waited for longer than half the time callers wait for their answer, the RPC timeout
    /// (``DatabaseConfiguration/lockTimeout``), so that a batch that gave up on a lock still has
    /// time to write the rest of its work without it.
    public init(
        service: ServiceName, schema: String, adminPortVariable: String, defaultAdminPort: Int, defaultPrefetch: Int = 64,
        genericPlans: Bool = false, boundsLockWaits: Bool = false, migrations: [Migration], context: ServiceContext
    ) throws {
        self.service = service
        self.schema = schema
        self.migrations = migrations
        self.context = context
        self.settings = try ServiceSettings(
            name: service.rawValue, adminPortVariable: adminPortVariable, defaultAdminPort: defaultAdminPort,
            defaultPrefetch: defaultPrefetch,
            environment: context.environment)
        var logger = context.logger
        logger[metadataKey: LogKey.instance] = .string(self.settings.instanceID)
        self.logger = logger
        var databaseConfiguration = try DatabaseConfiguration(environment: context.environment, schema: schema)
        databaseConfiguration.genericPlans = genericPlans
        if boundsLockWaits { databaseConfiguration.lockTimeout = self.settings.rpcTimeout / 2 }
        self.database = databaseConfiguration.makeDatabase(logger: logger)
        self.amqp = AMQPConnection(configuration: self.settings.amqp, logger: logger)
        self.topology = Self.topology(for: service, queueArguments: self.settings.durableQueueArguments)
        // A deadlock PostgreSQL broke rolled the work back: as safe to retry as an outage. Until
        // the forty-fifth session it was answered `internal` (a logout racing the pruner, say).
        // So is a publish the broker did not take (delivery's receipts, inside an ack's
        // transaction): it was `internal` until the forty-ninth session (a review).
        self.router.isDependencyDown = { error in
            Database.isRetryable(error) || (error as? AMQPError)?.isBrokerUnavailable == true
        }
        self.router.addPing(service: service, instanceID: self.settings.instanceID)
    }

    /// What every such service declares before its own additions: its RPC queue, and the
    /// consumers' queues it publishes into (``SharedQueue``), so that nothing it publishes before
    /// their consumers first start is dropped.
    public static func topology(for service: ServiceName, queueArguments: [String: AMQPFieldValue]) -> AMQPTopology {
        RPCServer.topology(for: service, queueArguments: queueArguments)
            .merged(with: .sharedQueues(producedBy: service, queueArguments: queueArguments))
    }

    /// The services to run, in start order. `clients` (an ``RPCClient`` to call other services)
    /// start with the broker connection and stop before it; `workers` (consumers, periodic jobs)
    /// run beside the RPC server once start-up is done; `relays` (the outbox relay) too, and at a
    /// graceful shutdown they stop after the RPC server and the workers (``ServiceStartup``).
    /// `prepare` runs after migrations and topology, before the RPC server takes requests (load
    /// keys, warm caches).
    public func services(
        clients: [any Service] = [], workers extraWorkers: [any Service] = [], relays: [any Service] = [],
        prepare: @escaping @Sendable () async throws -> Void = {}
    ) -> [any Service] {
        let ready = ReadyFlag()
        let migrator = DatabaseMigrator(
            client: self.database, schema: self.schema, migrations: self.migrations, logger: self.logger)
        let amqp = self.amqp
        let topology = self.topology
        let rpcServer = RPCServer(
            connection: amqp, service: self.service, prefetch: self.settings.prefetch, router: self.router, logger: self.logger)
        let startup = ServiceStartup(
            ready: ready, logger: self.logger,
            readyMessage: "\(self.service) ready; admin on http://\(self.settings.adminHost):\(self.settings.adminPort)",
            steps: {
                try await migrator.run()
                try await amqp.declare(topology)
                try await prepare()
            },
            workers: [rpcServer] + extraWorkers, followers: relays)
        let admin = AdminServer.make(
            host: self.settings.adminHost, port: self.settings.adminPort,
            checks: [.started(ready), .amqp(self.amqp), .postgres(self.database, logger: self.logger)],
            registry: self.context.registry, logger: self.logger)
        return [self.database, self.amqp] + clients + [startup, admin]
    }
}
