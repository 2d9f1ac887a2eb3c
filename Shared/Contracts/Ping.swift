import Foundation

/// Liveness over the broker: the caller learns that the service consumes its queue and answers.
public struct PingCommand: Codable, Sendable, Hashable {
    public var nonce: String
    public init(nonce: String = UUID().uuidString) { self.nonce = nonce }
}

/// The answer to ``PingCommand``: the same nonce, the service's name and its instance id.
public struct PingReply: Codable, Sendable, Hashable {
    public var nonce: String
    public var service: String
    public var instance: String

    public init(nonce: String, service: String, instance: String) {
        self.nonce = nonce
        self.service = service
        self.instance = instance
    }
}

/// The message type of a ping to `service` (each service has its own, so a reply proves which
/// queue answered).
extension MessageType {
    public static func ping(_ service: ServiceName) -> MessageType {
        MessageType(rawValue: "\(service.rawValue).ping.v1")
    }
}
