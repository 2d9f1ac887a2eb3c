/// What librabbitmq-c can encode: a short string (a property, a header's name) holds at most
/// 255 bytes, and a message's properties go in one frame.
///
/// A message past either was sent in part: the library stops at the encoding error after the
/// method frame went out, which reads as a lost connection. The message then went back in line
/// and was republished, and failed, about ten times a second, with the publishes behind it held
/// for good and those before it delivered again at each round (the forty-fourth session's
/// review). Such a message is now refused before it is queued.
extension AMQPProperties {
    /// Why these properties cannot be encoded within `frameMax`, or nil.
    public func encodingProblem(frameMax: Int) -> String? {
        let shortStrings = [
            ("content_type", self.contentType), ("message_id", self.messageID), ("correlation_id", self.correlationID),
            ("reply_to", self.replyTo), ("type", self.type), ("expiration", self.expiration),
        ]
        // The content header frame: class, weight, body size and flags; then each property.
        var size = 14 + 8 + 1
        for (name, value) in shortStrings {
            guard let value else { continue }
            guard value.utf8.count <= 255 else { return "\(name) has \(value.utf8.count) bytes, over AMQP's 255" }
            size += 1 + value.utf8.count
        }
        guard let headers = Self.encodedSize(of: self.headers) else { return "a header's name is over AMQP's 255 bytes" }
        size += headers
        // The frame's own header and end.
        guard size + 8 <= frameMax else { return "the properties take \(size) bytes, over the frame size of \(frameMax)" }
        return nil
    }

    /// A field table's encoded size; nil when a name is over 255 bytes.
    static func encodedSize(of table: [String: AMQPFieldValue]) -> Int? {
        var size = 4
        for (name, value) in table {
            guard name.utf8.count <= 255, let value = Self.encodedSize(of: value) else { return nil }
            size += 1 + name.utf8.count + value
        }
        return size
    }

    /// A field value's encoded size, its type tag included; nil when a table in it has a name
    /// over 255 bytes.
    static func encodedSize(of value: AMQPFieldValue) -> Int? {
        switch value {
        case .string(let text): return 1 + 4 + text.utf8.count
        case .int, .double, .timestamp: return 1 + 8
        case .bool: return 1 + 1
        case .bytes(let bytes): return 1 + 4 + bytes.count
        case .void: return 1
        case .table(let table): return Self.encodedSize(of: table).map { 1 + $0 }
        case .array(let values):
            var size = 1 + 4
            for value in values {
                guard let one = Self.encodedSize(of: value) else { return nil }
                size += one
            }
            return size
        }
    }
}
