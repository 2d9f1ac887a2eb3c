import Foundation

/// The messaging service's RPCs (requests on `messaging.rpc`) and domain events (on
/// `messenger.events`, routing key = type).
public enum MessagingMessage {
    public static let createConversation: MessageType = "messaging.create_conversation.v1"
    public static let createMessage: MessageType = "messaging.create_message.v1"
    public static let updateMessage: MessageType = "messaging.update_message.v1"
    public static let deleteMessage: MessageType = "messaging.delete_message.v1"
    public static let addReaction: MessageType = "messaging.add_reaction.v1"
    public static let removeReaction: MessageType = "messaging.remove_reaction.v1"
    public static let markSeen: MessageType = "messaging.mark_seen.v1"
    public static let listThreads: MessageType = "messaging.list_threads.v1"
    public static let listMessages: MessageType = "messaging.list_messages.v1"
    /// The caller's fellow members of a thread (for ephemeral events such as `typing`).
    public static let threadMembers: MessageType = "messaging.thread_members.v1"
    /// From media: attachments are bound to a message of the caller (records `ATTACHMENT_ADDED`).
    public static let attach: MessageType = "messaging.attach.v1"

    // Domain events.
    public static let threadCreated: MessageType = "messaging.thread_created.v1"
    public static let messageCreated: MessageType = "messaging.message_created.v1"
    public static let messageUpdated: MessageType = "messaging.message_updated.v1"
    public static let messagesDeleted: MessageType = "messaging.messages_deleted.v1"
    public static let reactionAdded: MessageType = "messaging.reaction_added.v1"
    public static let reactionRemoved: MessageType = "messaging.reaction_removed.v1"
    public static let messageSeen: MessageType = "messaging.message_seen.v1"
    public static let attachmentAdded: MessageType = "messaging.attachment_added.v1"
}

/// The payload of every domain event a user may see: the client-facing event name
/// (`MESSAGE_CREATED`), the users who receive it, and the event's client data (protocol.md,
/// "Events"). The envelope's id is the event id clients see.
public struct DomainEvent<Data: Sendable>: Sendable {
    /// The `type` clients see, for example `MESSAGE_CREATED`.
    public var name: String
    public var threadId: EntityID
    /// Who receives it, fixed when the event happened (the thread's members at that moment).
    public var recipients: [EntityID]
    public var data: Data

    public init(name: String, threadId: EntityID, recipients: [EntityID], data: Data) {
        self.name = name
        self.threadId = threadId
        self.recipients = recipients
        self.data = data
    }
}

extension DomainEvent: Encodable where Data: Encodable {}
extension DomainEvent: Decodable where Data: Decodable {}

/// `Thread` of the client contract.
public struct ChatThread: Codable, Sendable, Hashable {
    public var id: EntityID
    public var type: ThreadKind
    public var title: String?
    public var createdBy: EntityID
    public var memberIds: [EntityID]
    public var createdAt: Date

    public init(id: EntityID, type: ThreadKind, title: String?, createdBy: EntityID, memberIds: [EntityID], createdAt: Date) {
        self.id = id
        self.type = type
        self.title = title
        self.createdBy = createdBy
        self.memberIds = memberIds
        self.createdAt = createdAt
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.type, forKey: .type)
        try container.encode(self.title, forKey: .title)  // null for a DM, not absent
        try container.encode(self.createdBy, forKey: .createdBy)
        try container.encode(self.memberIds, forKey: .memberIds)
        try container.encode(self.createdAt, forKey: .createdAt)
    }
}

/// `DM` or `GROUP`.
public enum ThreadKind: String, Codable, Sendable, Hashable {
    case dm = "DM"
    case group = "GROUP"
}

/// `Message` of the client contract. A deleted message keeps its place with an empty body and no
/// reactions or attachments.
public struct ChatMessage: Codable, Sendable, Hashable {
    public var id: EntityID
    public var threadId: EntityID
    public var senderId: EntityID
    public var clientMessageId: String
    public var seq: Int64
    public var body: String
    public var replyToId: EntityID?
    public var attachments: [Attachment]
    public var reactions: [ReactionGroup]
    public var createdAt: Date
    public var editedAt: Date?
    public var deletedAt: Date?

    public init(
        id: EntityID, threadId: EntityID, senderId: EntityID, clientMessageId: String, seq: Int64, body: String,
        replyToId: EntityID?, attachments: [Attachment], reactions: [ReactionGroup], createdAt: Date, editedAt: Date?,
        deletedAt: Date?
    ) {
        self.id = id
        self.threadId = threadId
        self.senderId = senderId
        self.clientMessageId = clientMessageId
        self.seq = seq
        self.body = body
        self.replyToId = replyToId
        self.attachments = attachments
        self.reactions = reactions
        self.createdAt = createdAt
        self.editedAt = editedAt
        self.deletedAt = deletedAt
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.threadId, forKey: .threadId)
        try container.encode(self.senderId, forKey: .senderId)
        try container.encode(self.clientMessageId, forKey: .clientMessageId)
        try container.encode(self.seq, forKey: .seq)
        try container.encode(self.body, forKey: .body)
        try container.encode(self.replyToId, forKey: .replyToId)
        try container.encode(self.attachments, forKey: .attachments)
        try container.encode(self.reactions, forKey: .reactions)
        try container.encode(self.createdAt, forKey: .createdAt)
        try container.encode(self.editedAt, forKey: .editedAt)
        try container.encode(self.deletedAt, forKey: .deletedAt)
    }
}

/// The users who reacted to a message with one emoji, in the order they reacted.
public struct ReactionGroup: Codable, Sendable, Hashable {
    public var emojiHex: String
    public var userIds: [EntityID]

    public init(emojiHex: String, userIds: [EntityID]) {
        self.emojiHex = emojiHex
        self.userIds = userIds
    }
}

/// `Reaction` of the client contract.
public struct Reaction: Codable, Sendable, Hashable {
    public var messageId: EntityID
    public var userId: EntityID
    public var emojiHex: String
    public var createdAt: Date

    public init(messageId: EntityID, userId: EntityID, emojiHex: String, createdAt: Date) {
        self.messageId = messageId
        self.userId = userId
        self.emojiHex = emojiHex
        self.createdAt = createdAt
    }
}

/// `Attachment` of the client contract.
public struct Attachment: Codable, Sendable, Hashable {
    public var id: EntityID
    public var messageId: EntityID?
    public var type: String
    public var url: String
    public var fileName: String
    public var contentType: String
    public var sizeBytes: Int64
    public var width: Int?
    public var height: Int?
    public var createdAt: Date

    public init(
        id: EntityID, messageId: EntityID?, type: String, url: String, fileName: String, contentType: String, sizeBytes: Int64,
        width: Int?, height: Int?, createdAt: Date
    ) {
        self.id = id
        self.messageId = messageId
        self.type = type
        self.url = url
        self.fileName = fileName
        self.contentType = contentType
        self.sizeBytes = sizeBytes
        self.width = width
        self.height = height
        self.createdAt = createdAt
    }
}

/// `ThreadSummary`: a thread with its newest message and the caller's unread count.
public struct ThreadSummary: Codable, Sendable, Hashable {
    public var thread: ChatThread
    public var lastMessage: ChatMessage?
    public var unreadCount: Int

    public init(thread: ChatThread, lastMessage: ChatMessage?, unreadCount: Int) {
        self.thread = thread
        self.lastMessage = lastMessage
        self.unreadCount = unreadCount
    }
}

/// One page of a keyset-paginated list; `nextCursor` is null on the last page.
public struct Page<Item: Codable & Sendable>: Codable, Sendable {
    public var items: [Item]
    public var nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.items, forKey: .items)
        try container.encode(self.nextCursor, forKey: .nextCursor)
    }
}

// MARK: - Requests and replies

/// `create_conversation`: `memberIds` are the other users; the caller is added.
public struct CreateConversationRequest: Codable, Sendable {
    public var type: ThreadKind
    public var memberIds: [EntityID]
    public var title: String?

    public init(type: ThreadKind, memberIds: [EntityID], title: String? = nil) {
        self.type = type
        self.memberIds = memberIds
        self.title = title
    }
}

/// `create_message`.
public struct CreateMessageRequest: Codable, Sendable {
    public var threadId: EntityID
    public var clientMessageId: String
    public var body: String
    public var replyToId: EntityID?

    public init(threadId: EntityID, clientMessageId: String, body: String, replyToId: EntityID? = nil) {
        self.threadId = threadId
        self.clientMessageId = clientMessageId
        self.body = body
        self.replyToId = replyToId
    }
}

/// `update_message`.
public struct UpdateMessageRequest: Codable, Sendable {
    public var messageId: EntityID
    public var body: String
}

/// `delete_message`.
public struct DeleteMessagesRequest: Codable, Sendable {
    public var messageIds: [EntityID]
}

/// `add_reaction` and `remove_reaction`; also the ack of `remove_reaction`.
public struct ReactionTarget: Codable, Sendable, Hashable {
    public var messageId: EntityID
    public var emojiHex: String

    public init(messageId: EntityID, emojiHex: String) {
        self.messageId = messageId
        self.emojiHex = emojiHex
    }
}

/// `mark_seen` and its ack.
public struct SeenMark: Codable, Sendable, Hashable {
    public var threadId: EntityID
    public var messageId: EntityID

    public init(threadId: EntityID, messageId: EntityID) {
        self.threadId = threadId
        self.messageId = messageId
    }
}

/// `GET /api/threads`.
public struct ListThreadsRequest: Codable, Sendable {
    public var limit: Int
    public var cursor: String?

    public init(limit: Int, cursor: String?) {
        self.limit = limit
        self.cursor = cursor
    }
}

/// `GET /api/threads/:id/messages`.
public struct ListMessagesRequest: Codable, Sendable {
    public var threadId: EntityID
    public var limit: Int
    public var before: String?

    public init(threadId: EntityID, limit: Int, before: String?) {
        self.threadId = threadId
        self.limit = limit
        self.before = before
    }
}

/// A thread id alone (`thread_members`).
public struct ThreadReference: Codable, Sendable {
    public var threadId: EntityID
    public init(threadId: EntityID) { self.threadId = threadId }
}

/// The members of a thread.
public struct ThreadMembers: Codable, Sendable {
    public var memberIds: [EntityID]
    public init(memberIds: [EntityID]) { self.memberIds = memberIds }
}

/// `{thread}`.
public struct ThreadEnvelope: Codable, Sendable {
    public var thread: ChatThread
    public init(thread: ChatThread) { self.thread = thread }
}

/// `{message}`.
public struct MessageEnvelope: Codable, Sendable {
    public var message: ChatMessage
    public init(message: ChatMessage) { self.message = message }
}

/// `{reaction}`.
public struct ReactionEnvelope: Codable, Sendable {
    public var reaction: Reaction
    public init(reaction: Reaction) { self.reaction = reaction }
}

/// `{threadId, messageIds}`: the ack of `delete_message` and the data of `MESSAGES_DELETED`.
public struct DeletedMessages: Codable, Sendable {
    public var threadId: EntityID
    public var messageIds: [EntityID]
    /// In the `MESSAGES_DELETED` event (not the command's reply): the messages' `deletedAt` as
    /// the thread shows it, which delivery writes into their earlier events, so a replay shows
    /// the same time as the thread's page.
    public var deletedAt: Date?
    public init(threadId: EntityID, messageIds: [EntityID], deletedAt: Date? = nil) {
        self.threadId = threadId
        self.messageIds = messageIds
        self.deletedAt = deletedAt
    }
}

/// The data of `REACTION_ADDED` and `REACTION_REMOVED`.
public struct ReactionChange: Codable, Sendable {
    public var threadId: EntityID
    public var messageId: EntityID
    public var userId: EntityID
    public var emojiHex: String
    public init(threadId: EntityID, messageId: EntityID, userId: EntityID, emojiHex: String) {
        self.threadId = threadId
        self.messageId = messageId
        self.userId = userId
        self.emojiHex = emojiHex
    }
}

/// The data of `MESSAGE_SEEN` (and, later, `MESSAGE_DELIVERED`).
public struct MessageReceipt: Codable, Sendable {
    public var threadId: EntityID
    public var messageId: EntityID
    public var userId: EntityID
    public var at: Date
    public init(threadId: EntityID, messageId: EntityID, userId: EntityID, at: Date) {
        self.threadId = threadId
        self.messageId = messageId
        self.userId = userId
        self.at = at
    }
}
