import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import ServiceLifecycle

/// Wires the `delivery` service: its schema, the event log, the consumers of domain events and
/// retry checks, the `ack_events` and `sync` RPCs, and the pruning job.
func buildServices(context: ServiceContext) throws -> [any Service] {
    // Read before the broker connections start, so a bad value is the only line logged.
    let settings = try DeliverySettings(environment: context.environment)
    var backend = try BackendService(
        service: .delivery, schema: "delivery", adminPortVariable: "DELIVERY_ADMIN_PORT", defaultAdminPort: 9104,
        defaultPrefetch: 256, migrations: DeliveryMigrations.all, context: context)
    let logger = backend.logger
    let log = EventLog(client: backend.database, retention: settings.retention, logger: logger)
    let publisher = PushPublisher(amqp: backend.amqp, delays: settings.retryDelays)
    let rpcTimeout = backend.settings.rpcTimeout
    backend.topology = backend.topology.merged(
        with: DeliveryTopology.topology(delays: settings.retryDelays, queueArguments: backend.settings.durableQueueArguments))

    backend.router.on(DeliveryMessage.ackEvents, AckEventsRequest.self) { request, context in
        guard let user = context.actorID else { throw ServiceError.unauthorized() }
        // The receipts' confirms are awaited inside the ack's transaction: no longer than its
        // caller waits. An ack delivered again (its caller may still wait) gets a timeout's worth:
        // acknowledging twice changes nothing.
        let deadline = context.redelivered ? .now + rpcTimeout : (context.deadline ?? .now + rpcTimeout)
        let upToSeq = try await log.acknowledge(user: user, upToSeq: request.upToSeq, before: deadline) { receipts in
            try await publisher.sendToConsumer(receipts, before: deadline)
        }
        return AckEventsRequest(upToSeq: upToSeq)
    }
    backend.router.on(DeliveryMessage.sync, SyncRequest.self) { request, context in
        guard let user = context.actorID else { throw ServiceError.unauthorized() }
        guard request.afterSeq >= 0 else { throw ServiceError.invalidArgument("afterSeq must not be negative") }
        let limit = request.limit ?? 100
        guard (1...500).contains(limit) else { throw ServiceError.invalidArgument("limit must be 1 to 500") }
        return try await log.events(
            user: user, afterSeq: request.afterSeq, limit: limit, includeAcknowledged: request.includeAcknowledged ?? false,
            acknowledgedSince: request.acknowledgedSince, acknowledgedAfter: request.acknowledgedAfter)
    }

    // A tenth of the first retry delay, at most 100 ms: the first retry comes that much later.
    let retryChecks = FirstRetryChecks(
        publisher: publisher, window: min(.milliseconds(100), settings.retryDelays[0] / 10),
        limit: Int(backend.settings.prefetch) / 2, logger: logger)
    return backend.services(workers: [
        retryChecks,
        DomainEventConsumer(
            amqp: backend.amqp, log: log, publisher: publisher, retryChecks: retryChecks,
            prefetch: backend.settings.prefetch, pushBudget: PushBudget(limit: settings.pushBytesInFlight),
            logger: logger),
        RetryConsumer(amqp: backend.amqp, log: log, publisher: publisher, retention: settings.retention, logger: logger),
        PeriodicJob("delivery pruning", every: settings.pruneInterval, logger: logger) {
            let removed = try await log.prune()
            if removed > 0 { logger.info("pruned expired deliveries", metadata: ["deliveries": "\(removed)"]) }
        },
    ])
}
