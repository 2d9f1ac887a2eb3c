import Foundation

/// The media service's RPCs.
public enum MediaMessage {
    /// One file, stored and recorded as an unbound attachment of the caller.
    public static let upload: MessageType = "media.upload.v1"
    /// `add_attachments` with attachment ids: binds the caller's uploads to the caller's message.
    public static let addAttachments: MessageType = "media.add_attachments.v1"
    /// Deletes uploads of the caller that are still unbound: those of an `add_attachments` with
    /// files that was refused.
    public static let discardUploads: MessageType = "media.discard_uploads.v1"
}

/// `media.upload.v1`: the bytes travel base64-encoded in the one request message (the reason is
/// in docs/media.md). The declared content type is kept only for logs: the type comes from the
/// bytes.
public struct UploadRequest: Codable, Sendable {
    public var fileName: String
    public var declaredContentType: String?
    public var data: Data

    public init(fileName: String, declaredContentType: String?, data: Data) {
        self.fileName = fileName
        self.declaredContentType = declaredContentType
        self.data = data
    }
}

/// `{attachment}`.
public struct AttachmentEnvelope: Codable, Sendable {
    public var attachment: Attachment
    public init(attachment: Attachment) { self.attachment = attachment }
}

/// `add_attachments {messageId, attachmentIds}`.
public struct AddAttachmentsRequest: Codable, Sendable {
    public var messageId: EntityID
    public var attachmentIds: [EntityID]

    public init(messageId: EntityID, attachmentIds: [EntityID]) {
        self.messageId = messageId
        self.attachmentIds = attachmentIds
    }
}

/// `media.discard_uploads.v1`: the caller's uploads to delete if they are still unbound.
public struct DiscardUploadsRequest: Codable, Sendable {
    public var attachmentIds: [EntityID]

    public init(attachmentIds: [EntityID]) {
        self.attachmentIds = attachmentIds
    }
}

/// `{attachments}`: the ack of `add_attachments`.
public struct AttachmentList: Codable, Sendable {
    public var attachments: [Attachment]
    public init(attachments: [Attachment]) { self.attachments = attachments }
}

/// `messaging.attach.v1`: media asks messaging to bind `attachments` (already owned by the
/// caller) to the caller's message `messageId`.
public struct AttachRequest: Codable, Sendable {
    public var messageId: EntityID
    public var attachments: [Attachment]

    public init(messageId: EntityID, attachments: [Attachment]) {
        self.messageId = messageId
        self.attachments = attachments
    }
}

/// The data of `ATTACHMENT_ADDED`.
public struct AttachmentsAdded: Codable, Sendable {
    public var threadId: EntityID
    public var messageId: EntityID
    public var attachments: [Attachment]

    public init(threadId: EntityID, messageId: EntityID, attachments: [Attachment]) {
        self.threadId = threadId
        self.messageId = messageId
        self.attachments = attachments
    }
}
