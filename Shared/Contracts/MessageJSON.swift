import Foundation
import SocketIOProtocol

/// A message's JSON written by hand: the same members and values as its `Codable` encoding
/// through ``MessengerJSON`` (a contract test compares them), without Foundation's generic
/// encoder, which was about a seventh of the messaging service's CPU under load.
extension ChatMessage {
    /// `{"message":{...}}`, the reply of `create_message` and the data of `MESSAGE_CREATED`.
    public var envelopeJSON: RawJSON {
        var text = #"{"message":"#
        self.write(to: &text)
        text += "}"
        return RawJSON(bytes: Data(text.utf8))
    }

    func write(to text: inout String) {
        text += #"{"id":""# + self.id.description + #"","threadId":""# + self.threadId.description
        text += #"","senderId":""# + self.senderId.description + #"","clientMessageId":"#
        JSONValue.writeString(self.clientMessageId, to: &text)
        text += #","seq":"# + String(self.seq) + #","body":"#
        JSONValue.writeString(self.body, to: &text)
        text += #","replyToId":"# + Self.quoted(self.replyToId?.description)
        text += #","attachments":["#
        for (index, attachment) in self.attachments.enumerated() {
            if index > 0 { text += "," }
            attachment.write(to: &text)
        }
        text += #"],"reactions":["#
        for (index, group) in self.reactions.enumerated() {
            if index > 0 { text += "," }
            text += #"{"emojiHex":"#
            JSONValue.writeString(group.emojiHex, to: &text)
            text += #","userIds":["# + group.userIds.map { "\"\($0.description)\"" }.joined(separator: ",") + "]}"
        }
        text += #"],"createdAt":""# + Timestamp.format(self.createdAt)
        text += #"","editedAt":"# + Self.quoted(self.editedAt.map(Timestamp.format))
        text += #","deletedAt":"# + Self.quoted(self.deletedAt.map(Timestamp.format)) + "}"
    }

    /// An id or a timestamp in quotes (they hold nothing to escape), or `null`.
    static func quoted(_ value: String?) -> String {
        value.map { "\"\($0)\"" } ?? "null"
    }
}

extension Attachment {
    /// As the synthesized encoding writes it: absent optionals are left out, not `null`.
    func write(to text: inout String) {
        text += #"{"id":""# + self.id.description + "\""
        if let messageId = self.messageId { text += #","messageId":""# + messageId.description + "\"" }
        text += #","type":"#
        JSONValue.writeString(self.type, to: &text)
        text += #","url":"#
        JSONValue.writeString(self.url, to: &text)
        text += #","fileName":"#
        JSONValue.writeString(self.fileName, to: &text)
        text += #","contentType":"#
        JSONValue.writeString(self.contentType, to: &text)
        text += #","sizeBytes":"# + String(self.sizeBytes)
        if let width = self.width { text += #","width":"# + String(width) }
        if let height = self.height { text += #","height":"# + String(height) }
        text += #","createdAt":""# + Timestamp.format(self.createdAt) + "\"}"
    }
}
