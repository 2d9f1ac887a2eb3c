/// The services that answer RPCs; each name is the routing key of its request queue.
public struct ServiceName: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let auth = ServiceName(rawValue: "auth")
    public static let messaging = ServiceName(rawValue: "messaging")
    public static let media = ServiceName(rawValue: "media")
    public static let delivery = ServiceName(rawValue: "delivery")
    public static let gateway = ServiceName(rawValue: "socket-gateway")

    /// The services that serve RPCs.
    public static let rpcServers: [ServiceName] = [.auth, .messaging, .media, .delivery]

    /// The durable queue that holds this service's requests.
    public var rpcQueue: String { "\(self.rawValue).rpc" }

    public var description: String { self.rawValue }
}
