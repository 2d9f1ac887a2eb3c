/// The error codes of the client contract (protocol.md, "Errors"), shared by REST, Socket.IO acks
/// and RPC replies between services.
public struct ErrorCode: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let invalidArgument = ErrorCode(rawValue: "invalid_argument")
    public static let unauthorized = ErrorCode(rawValue: "unauthorized")
    public static let forbidden = ErrorCode(rawValue: "forbidden")
    public static let notFound = ErrorCode(rawValue: "not_found")
    public static let conflict = ErrorCode(rawValue: "conflict")
    public static let payloadTooLarge = ErrorCode(rawValue: "payload_too_large")
    public static let rateLimited = ErrorCode(rawValue: "rate_limited")
    public static let unavailable = ErrorCode(rawValue: "unavailable")
    public static let `internal` = ErrorCode(rawValue: "internal")

    public var description: String { self.rawValue }

    /// Whether a request that failed with this code was refused, having changed nothing. After
    /// `unavailable` (a timeout) or `internal` the request may have been carried out, so what
    /// it set going must not be undone.
    public var isRefusal: Bool { self != .unavailable && self != .internal }
}
