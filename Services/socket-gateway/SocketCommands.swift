import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import SocketIOProtocol
import SocketIOServer

/// The commands of the socket (protocol.md, "Commands"): each is passed on to the messaging
/// service (conversations) or the delivery service (`ack_events`, `sync`) as an RPC, with the caller taken from the socket's verified token, and the
/// service's `{ok, data}` / `{ok: false, error}` reply goes back through the ack as it came.
/// `typing` is ephemeral: checked against the thread's members and emitted to the others' rooms
/// through the fan-out, never stored.
struct SocketCommands {
    let rpc: RPCClient
    let fanOut: RedisFanOut
    let rateLimit: CommandRateLimit
    /// Whether the login session of a socket's token has ended (a logout, a password change, a
    /// refresh token's reuse).
    let isRevoked: @Sendable (SocketIOSocket) -> Bool
    /// A socket's `ack_events` was answered, with the seq every event up to which is acknowledged.
    let acknowledged: @Sendable (SocketIOSocket, Int64) async -> Void
    let logger: Logger

    static let forwarded: [String: (MessageType, ServiceName)] = [
        "create_conversation": (MessagingMessage.createConversation, .messaging),
        "create_message": (MessagingMessage.createMessage, .messaging),
        "update_message": (MessagingMessage.updateMessage, .messaging),
        "delete_message": (MessagingMessage.deleteMessage, .messaging),
        "add_reaction": (MessagingMessage.addReaction, .messaging),
        "remove_reaction": (MessagingMessage.removeReaction, .messaging),
        "mark_seen": (MessagingMessage.markSeen, .messaging),
        "sync": (DeliveryMessage.sync, .delivery),
    ]

    func register(on server: SocketIOServer) {
        for (event, (type, service)) in Self.forwarded {
            self.on(event, server) { socket, arguments in
                await self.forward(type, to: service, arguments, socket: socket)
            }
        }
        // The socket's stream stops pushing again what the answer says is acknowledged.
        self.on("ack_events", server) { socket, arguments in
            let reply = await self.forward(DeliveryMessage.ackEvents, to: .delivery, arguments, socket: socket)
            if reply["ok"] == .bool(true), case .number(let seq)? = reply["data"]?["upToSeq"], let exact = Int64(exactly: seq) {
                await self.acknowledged(socket, exact)
            }
            return reply
        }
        self.on("typing", server) { socket, arguments in
            await self.typing(arguments, socket: socket)
        }
        self.on("add_attachments", server) { socket, arguments in
            await self.addAttachments(arguments, socket: socket)
        }
    }

    /// Handles `event` with a correlation id of its own for each command (a new trace id: a
    /// Socket.IO packet has no headers), bound while the command runs, so the RPCs and domain
    /// events it causes and the lines logged for it carry it; and counts it (``GatewayMetrics``).
    /// A command over the user's rate (``CommandRateLimit``) waits for its turn first.
    private func on(
        _ event: String, _ server: SocketIOServer,
        _ handler: @escaping @Sendable (SocketIOSocket, [JSONValue]) async -> JSONValue
    ) {
        let metrics = GatewayMetrics.Command(event: event)
        let (rateLimit, isRevoked) = (self.rateLimit, self.isRevoked)
        server.on(event) { socket, arguments in
            // A socket that closes meanwhile cancels nothing here: its command still runs,
            // unless its login session ended. Until the forty-fourth session the commands a
            // socket had queued ran after the session's revocation disconnected it (at the
            // user's rate: minutes of a stolen token's deletes after the owner logged out; a
            // review). Checked before the command takes its turn too: until the forty-ninth
            // session each refused command waited for its turn first, so a stolen token's
            // queues, refused one by one at the user's rate, held the owner's commands back
            // for as long (a review).
            func sessionEnded() -> Bool {
                guard isRevoked(socket) else { return false }
                metrics.record(Self.sessionEnded, since: .now)
                return true
            }
            if sessionEnded() { return [Self.sessionEnded] }
            let delay = rateLimit.delay(user: socket.userID, event: event)
            if delay > .zero { try? await Task.sleep(for: delay) }
            if sessionEnded() { return [Self.sessionEnded] }
            let start = ContinuousClock.now
            let reply = await RequestCorrelation.$id.withValue(TraceParent.newTraceID()) { await handler(socket, arguments) }
            metrics.record(reply, since: start)
            return [reply]
        }
    }

    /// The answer to a command whose socket's login session ended.
    private static let sessionEnded = SocketGateway.failure(.unauthorized("the login session has ended"))

    private func forward(
        _ type: MessageType, to service: ServiceName, _ arguments: [JSONValue], socket: SocketIOSocket
    ) async -> JSONValue {
        guard let payload = Self.payload(arguments) else {
            return SocketGateway.failure(.invalidArgument("the payload must be a JSON object"))
        }
        do {
            let reply = try await self.rpc.forward(
                type, to: service, payloadJSON: payload.jsonText, actor: UUID(text: socket.userID))
            return try JSONValue.parse(String(decoding: reply, as: UTF8.self))
        } catch let error as ServiceError {
            return SocketGateway.failure(error)
        } catch {
            self.logger.error("forwarding a command failed", metadata: ["type": "\(type)", "error": "\(LoggedError(error))"])
            return SocketGateway.failure(.internal())
        }
    }

    private func typing(_ arguments: [JSONValue], socket: SocketIOSocket) async -> JSONValue {
        guard let payload = Self.payload(arguments), let threadText = payload["threadId"]?.stringValue,
            let threadID = EntityID(threadText), case .bool(let isTyping)? = payload["isTyping"]
        else {
            return SocketGateway.failure(.invalidArgument("typing needs threadId (a thread id) and isTyping (a boolean)"))
        }
        do {
            let members = try await self.rpc.call(
                MessagingMessage.threadMembers, to: .messaging, payload: ThreadReference(threadId: threadID),
                replyAs: ThreadMembers.self, actor: UUID(text: socket.userID))
            let others = members.memberIds.map(\.description).filter { $0 != socket.userID }
            if !others.isEmpty {
                let data: JSONValue = .object([
                    "threadId": .string(threadID.description), "userId": .string(socket.userID), "isTyping": .bool(isTyping),
                ])
                await self.fanOut.emit("typing", [data], rooms: others.map { "user:\($0)" })
            }
            return .object(["ok": .bool(true), "data": .object([:])])
        } catch let error as ServiceError {
            return SocketGateway.failure(error)
        } catch {
            return SocketGateway.failure(.internal())
        }
    }

    /// `add_attachments` with `attachmentIds` (passed on to media as it is) or with `files`
    /// (Socket.IO binary attachments: each uploaded to media first, then bound by id), not both.
    private func addAttachments(_ arguments: [JSONValue], socket: SocketIOSocket) async -> JSONValue {
        guard let first = arguments.first, case .object = first else {
            return SocketGateway.failure(.invalidArgument("the payload must be a JSON object"))
        }
        let files: [JSONValue]
        switch first["files"] {
        case nil, .null?: return await self.forward(MediaMessage.addAttachments, to: .media, arguments, socket: socket)
        case .array(let listed)?: files = listed
        default: return SocketGateway.failure(.invalidArgument("files must be an array of files"))
        }
        if let ids = first["attachmentIds"], ids != .null {
            return SocketGateway.failure(.invalidArgument("give attachmentIds or files, not both"))
        }
        guard let messageText = first["messageId"]?.stringValue, let messageID = EntityID(messageText) else {
            return SocketGateway.failure(.invalidArgument("messageId must be a message id"))
        }
        guard (1...20).contains(files.count) else {
            return SocketGateway.failure(.invalidArgument("files must list 1 to 20 files"))
        }
        var uploads: [UploadRequest] = []
        for file in files {
            guard case .binary(let bytes)? = file["data"] else {
                return SocketGateway.failure(.invalidArgument("files[].data must be binary"))
            }
            // Absent is "file"; present, each must be a string (a number was taken as absent).
            for field in ["fileName", "contentType"] {
                switch file[field] {
                case nil, .null?, .string?: continue
                default: return SocketGateway.failure(.invalidArgument("files[].\(field) must be a string"))
                }
            }
            uploads.append(
                UploadRequest(
                    fileName: file["fileName"]?.stringValue ?? "file", declaredContentType: file["contentType"]?.stringValue,
                    data: Data(bytes)))
        }
        let actor = UUID(text: socket.userID)
        var ids: [EntityID] = []
        do {
            for upload in uploads {
                let stored = try await MediaUploads(rpc: self.rpc).store(upload, actor: actor)
                ids.append(stored.attachment.id)
            }
        } catch {
            // Nothing is bound yet (the bind goes once every file is stored): the files stored
            // so far go, whatever stopped the others, rather than wait a day unbound under ids
            // the client never learnt. Until the fifty-second session only a refusal discarded
            // them (a review). One whose upload timed out may still be stored by media; the
            // clean-up of unbound uploads takes it.
            await self.discard(ids, actor: actor)
            return self.attachFailure(error)
        }
        do {
            let bind = try await self.rpc.callRaw(
                MediaMessage.addAttachments, to: .media,
                payload: AddAttachmentsRequest(messageId: messageID, attachmentIds: ids), actor: actor)
            let reply = try JSONValue.parse(String(decoding: bind, as: UTF8.self))
            if reply["ok"] == .bool(false), let code = reply["error"]?["code"]?.stringValue, ErrorCode(rawValue: code).isRefusal {
                await self.discard(ids, actor: actor)
            }
            return reply
        } catch {
            // A refusal (a message not the caller's): the files go too. After a timeout the bind
            // may have been done, so they stay.
            if let error = error as? ServiceError, error.code.isRefusal { await self.discard(ids, actor: actor) }
            return self.attachFailure(error)
        }
    }

    /// The answer to an `add_attachments` that failed with `error`.
    private func attachFailure(_ error: any Error) -> JSONValue {
        if let error = error as? ServiceError { return SocketGateway.failure(error) }
        self.logger.error("add_attachments failed", metadata: ["error": "\(LoggedError(error))"])
        return SocketGateway.failure(.internal())
    }

    /// Asks media to delete `ids`, uploads of `actor` that a refused `add_attachments` stored;
    /// what fails here goes with the clean-up of unbound uploads.
    private func discard(_ ids: [EntityID], actor: UUID?) async {
        guard !ids.isEmpty else { return }
        do {
            _ = try await self.rpc.call(
                MediaMessage.discardUploads, to: .media, payload: DiscardUploadsRequest(attachmentIds: ids),
                replyAs: EmptyPayload.self, actor: actor)
        } catch {
            self.logger.warning(
                "discarding the uploads of a refused add_attachments failed", metadata: ["error": "\(LoggedError(error))"])
        }
    }

    /// The command's payload: its first argument, which must be a JSON object. Binaries in it
    /// (Socket.IO attachments; only `add_attachments` takes files) go on as the placeholders the
    /// packet carried them as: in a field the service does not know they are ignored, like any
    /// unknown field; in one it knows, the service names the field as having the wrong type.
    private static func payload(_ arguments: [JSONValue]) -> JSONValue? {
        guard let first = arguments.first, case .object = first else { return nil }
        return first.withBinaryPlaceholders
    }
}
