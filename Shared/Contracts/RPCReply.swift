/// The reply to an RPC between services: `{"ok": true, "data": ...}` or
/// `{"ok": false, "error": {"code", "message"}}`, the very shape of a Socket.IO ack in the client
/// contract, so the gateway can pass a reply through without reshaping it.
public struct RPCReply<Payload: Sendable>: Sendable {
    public var ok: Bool
    public var data: Payload?
    public var error: ServiceError?

    public static func success(_ data: Payload) -> RPCReply { .init(ok: true, data: data, error: nil) }
    public static func failure(_ error: ServiceError) -> RPCReply { .init(ok: false, data: nil, error: error) }

    /// The payload, or the remote error thrown.
    public func get() throws -> Payload {
        if self.ok, let data = self.data { return data }
        throw self.error ?? ServiceError.internal("reply without data")
    }
}

extension RPCReply: Encodable where Payload: Encodable {}
extension RPCReply: Decodable where Payload: Decodable {}

/// A payload with no fields, `{}`.
public struct EmptyPayload: Codable, Sendable, Hashable {
    public init() {}
}
