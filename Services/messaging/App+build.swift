import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import ServiceLifecycle

/// Wires the `messaging` service: its schema, the conversation RPCs, the outbox relay and the
/// read model of users.
func buildServices(context: ServiceContext) throws -> [any Service] {
    // Read before the broker connections start, so a bad value is the only line logged.
    let batchWriters = try context.environment.int("MESSAGING_BATCH_WRITERS", default: 2, in: 1...64)
    let rules = try MessagingRules(environment: context.environment)
    var backend = try BackendService(
        service: .messaging, schema: "messaging", adminPortVariable: "MESSAGING_ADMIN_PORT", defaultAdminPort: 9102,
        // Commands in flight are what group commit batches: a deeper prefetch makes larger batches.
        defaultPrefetch: 256,
        // The prepared statements (MessageStatements, the outbox's) look rows up by key; planning
        // the batch's write at each execution cost more than running it.
        genericPlans: true,
        // A statement behind a lock whose holder froze (a stopped or partitioned replica, in
        // the middle of a batch) gives up when its caller does, with `unavailable`: the fast
        // path's one statement as much as a batch under the locks (docs/messaging.md).
        boundsLockWaits: true, migrations: MessagingMigrations.all, context: context)
    let settings = backend.settings
    let logger = backend.logger
    let rpc = RPCClient(
        connection: backend.amqp, instanceName: settings.instanceID, timeout: settings.rpcTimeout,
        replyQueueType: settings.queueType, logger: logger)
    let directory = UserDirectory(client: backend.database, rpc: rpc, logger: logger)
    let outbox = OutboxSignal()
    let conversations = Conversations(
        client: backend.database, users: directory, outbox: outbox, faults: FaultPoints(environment: context.environment),
        logger: logger, rules: rules)
    backend.topology = backend.topology.merged(
        with: UserEventsConsumer.topology(queueArguments: settings.durableQueueArguments))

    backend.router.on(MessagingMessage.createConversation, CreateConversationRequest.self) { request, context in
        try await conversations.createConversation(
            request, actor: context.actorID, requestID: context.messageID, deadline: context.deadline)
    }
    let batcher = MessageBatcher(
        conversations: conversations,
        concurrentBatches: batchWriters)
    backend.router.on(MessagingMessage.createMessage, CreateMessageRequest.self) { request, context in
        try await batcher.createMessage(request, actor: context.actorID, deadline: context.deadline)
    }
    backend.router.on(MessagingMessage.updateMessage, UpdateMessageRequest.self) { request, context in
        try await conversations.updateMessage(
            request, actor: context.actorID, requestID: context.messageID, deadline: context.deadline)
    }
    backend.router.on(MessagingMessage.deleteMessage, DeleteMessagesRequest.self) { request, context in
        try await conversations.deleteMessages(request, actor: context.actorID)
    }
    backend.router.on(MessagingMessage.addReaction, ReactionTarget.self) { request, context in
        try await conversations.addReaction(
            request, actor: context.actorID, requestID: context.messageID, deadline: context.deadline)
    }
    backend.router.on(MessagingMessage.removeReaction, ReactionTarget.self) { request, context in
        try await conversations.removeReaction(
            request, actor: context.actorID, requestID: context.messageID, deadline: context.deadline)
    }
    backend.router.on(MessagingMessage.markSeen, SeenMark.self) { request, context in
        try await conversations.markSeen(request, actor: context.actorID)
    }
    backend.router.on(MessagingMessage.listThreads, ListThreadsRequest.self) { request, context in
        try await conversations.listThreads(request, actor: context.actorID)
    }
    backend.router.on(MessagingMessage.listMessages, ListMessagesRequest.self) { request, context in
        try await conversations.listMessages(request, actor: context.actorID)
    }
    backend.router.on(MessagingMessage.attach, AttachRequest.self) { request, context in
        try await conversations.attach(request, actor: context.actorID)
    }
    backend.router.on(MessagingMessage.threadMembers, ThreadReference.self) { request, context in
        try await conversations.threadMembers(request, actor: context.actorID)
    }

    let relay = OutboxRelay(
        client: backend.database, amqp: backend.amqp, exchange: ExchangeName.events, signal: outbox, schema: "messaging",
        logger: logger)
    let users = UserEventsConsumer(amqp: backend.amqp, directory: directory, prefetch: settings.prefetch, logger: logger)
    let database = backend.database
    let pruning = PeriodicJob("handled requests pruning", every: .seconds(60), logger: logger) {
        let removed = try await HandledRequests.prune(on: database, logger: logger)
        if removed > 0 { logger.debug("pruned handled requests", metadata: ["requests": "\(removed)"]) }
    }
    return backend.services(clients: [rpc], workers: [users, pruning], relays: [relay])
}
