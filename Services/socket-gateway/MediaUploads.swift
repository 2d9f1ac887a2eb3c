import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerServiceKit
import NIOPosix

/// Passes uploads on to the media service, for `POST /api/attachments` and `add_attachments`
/// with files alike.
///
/// An upload may take up to ``timeout``: media may be sending it on to Cloudinary. So that a
/// media service that is down is not waited for that long, it is pinged first, with
/// ``pickupTimeout``: the caller hears `unavailable` (503) within seconds, and a socket's later
/// commands do not wait behind it. (A media service that stops between the ping and the upload
/// is still waited for, up to ``timeout``.)
struct MediaUploads: Sendable {
    let rpc: RPCClient

    /// How long an upload may take end to end.
    static let timeout = Duration.seconds(120)
    /// How long media has to answer the ping before an upload.
    static let pickupTimeout = Duration.seconds(3)

    /// Stores `upload` for `actor` (not bound to any message yet).
    func store(_ upload: UploadRequest, actor: UUID?) async throws -> AttachmentEnvelope {
        try await self.rpc.ping(.media, timeout: Self.pickupTimeout)
        // Encoding a file of up to 25 MiB as the RPC's JSON (base64) takes tens of milliseconds:
        // on NIO's thread pool, not on an event loop, where every socket of the loop would wait
        // for it. (Until the forty-second session it ran under a preference for the global
        // concurrent executor, which is the event loops here: it took nothing off them.)
        return try await self.rpc.call(
            MediaMessage.upload, to: .media, payload: upload, replyAs: AttachmentEnvelope.self, actor: actor,
            timeout: Self.timeout, offload: Self.threadPool)
    }

    /// Runs a request's encoding on NIO's thread pool.
    static let threadPool = RPCEncodingOffload { encode in try await NIOThreadPool.singleton.runIfActive(encode) }
}
