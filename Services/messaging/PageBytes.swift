import MessengerContracts

/// How much of a REST page's JSON a message or a thread summary makes, about, so that a page
/// stops early (with its cursor) once it passes ``maximum``.
///
/// A page was bounded by its count only. A message may carry 20 emoji each used by all of a
/// group's 256 members (about 200 KB of user ids), so a page of 100 could be 20 MB, encoded by
/// messaging, carried by RabbitMQ and decoded and encoded again by the gateway for one GET (a
/// review in the forty-fourth session). The contract's cursors let a client page on from a
/// shorter page, as delivery's `sync` pages do.
enum PageBytes {
    /// What a page's items may make, about; its first item always goes.
    static let maximum = 1 << 20

    /// How many of `items`, from the first, fit in ``maximum``: one at least.
    static func fitting<Item>(_ items: some Collection<Item>, size: (Item) -> Int) -> Int {
        var total = 0
        var count = 0
        for item in items {
            total += size(item)
            if count > 0, total > Self.maximum { break }
            count += 1
        }
        return count
    }

    /// A message: its fixed fields, its body (escapes aside), 40 bytes an id in its reactions,
    /// and each attachment's URL and name with its fixed fields.
    static func of(_ message: ChatMessage) -> Int {
        let reactions = message.reactions.reduce(0) { $0 + 40 + 40 * $1.userIds.count }
        let attachments = message.attachments.reduce(0) { $0 + 300 + $1.url.utf8.count + $1.fileName.utf8.count }
        return 400 + message.body.utf8.count + message.clientMessageId.utf8.count + reactions + attachments
    }

    /// `count` reactions, as ``of(_:)-(ChatMessage)`` counts them (40 bytes an id, and 40 an
    /// emoji), with as many emoji as a message may have now
    /// (``Conversations/maximumEmojiPerMessage``): a message from before that bound may have
    /// more, so a page cut on this is measured again once its reactions are read.
    static func ofReactions(count: Int) -> Int {
        40 * count + 40 * min(count, Conversations.maximumEmojiPerMessage)
    }

    /// A thread summary: its thread's fields and member ids, and its last message.
    static func of(_ summary: ThreadSummary) -> Int {
        300 + (summary.thread.title?.utf8.count ?? 0) + 40 * summary.thread.memberIds.count
            + (summary.lastMessage.map(Self.of) ?? 0)
    }
}
