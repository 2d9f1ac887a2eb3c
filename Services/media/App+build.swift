import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerHTTP
import MessengerServiceKit
import ServiceLifecycle

/// Wires the `media` service: its schema, the store (Cloudinary when configured, the local disk
/// otherwise), the upload and binding RPCs, the removal of deleted messages' files, and the
/// clean-up.
func buildServices(context: ServiceContext) throws -> [any Service] {
    // Read before the broker connections start, so a bad value is the only line logged.
    let settings = try MediaSettings(environment: context.environment)
    var backend = try BackendService(
        service: .media, schema: "media", adminPortVariable: "MEDIA_ADMIN_PORT", defaultAdminPort: 9103,
        // Each upload request holds a whole file in memory: take few at a time.
        defaultPrefetch: 8, migrations: MediaMigrations.all, context: context)
    backend.topology = backend.topology.merged(
        with: DeletedMessagesConsumer.topology(queueArguments: backend.settings.durableQueueArguments))
    let logger = backend.logger
    let store: any MediaStore
    let local = LocalMediaStore(directory: settings.directory, logger: logger)
    var stores: [String: any MediaStore] = ["local": local]
    if let cloudinary = settings.cloudinary {
        store = CloudinaryStore(configuration: cloudinary, curl: CurlClient(), logger: logger)
        stores["cloudinary"] = store
        logger.info(
            "storing attachments in Cloudinary",
            metadata: ["cloud": "\(cloudinary.cloudName)", "upload_prefix": "\(cloudinary.uploadPrefix)"])
    } else {
        store = local
        logger.info("storing attachments on the local disk", metadata: ["directory": "\(settings.directory)"])
    }
    let rpc = RPCClient(
        connection: backend.amqp, instanceName: backend.settings.instanceID, timeout: backend.settings.rpcTimeout,
        replyQueueType: backend.settings.queueType, logger: logger)
    let attachments = Attachments(
        client: backend.database, store: store, stores: stores, rpc: rpc, maximumUpload: settings.maximumUpload,
        unboundBytesPerUser: settings.unboundBytesPerUser,
        faults: FaultPoints(environment: context.environment), logger: logger)

    backend.router.on(MediaMessage.upload, UploadRequest.self) { request, context in
        try await attachments.upload(request, actor: context.actorID, deadline: context.deadline)
    }
    backend.router.on(MediaMessage.addAttachments, AddAttachmentsRequest.self) { request, context in
        try await attachments.addAttachments(request, actor: context.actorID)
    }
    backend.router.on(MediaMessage.discardUploads, DiscardUploadsRequest.self) { request, context in
        try await attachments.discardUploads(request, actor: context.actorID, deadline: context.deadline)
    }
    return backend.services(
        clients: [rpc],
        workers: [
            DeletedMessagesConsumer(
                amqp: backend.amqp, attachments: attachments, prefetch: backend.settings.prefetch, logger: logger),
            PeriodicJob("media clean-up", every: settings.cleanupInterval, logger: logger) {
                let removed = try await attachments.cleanUp(unboundOlderThan: settings.unboundLifetime)
                if removed > 0 {
                    logger.info("removed expired uploads and deleted messages' files", metadata: ["files": "\(removed)"])
                }
            },
        ])
}
