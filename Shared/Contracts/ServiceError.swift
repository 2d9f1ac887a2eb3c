/// An error that crosses a service boundary: a contract code and a human message that is safe to
/// show a client (no SQL, no stack traces, no internal ids).
public struct ServiceError: Error, Codable, Hashable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    /// Seconds to wait before trying again (`rate_limited`, and `unavailable` when the service
    /// can tell); REST sends it as `Retry-After`.
    public var retryAfter: Int?

    public init(_ code: ErrorCode, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public static func invalidArgument(_ message: String) -> ServiceError { .init(.invalidArgument, message) }
    public static func unauthorized(_ message: String = "unauthorized") -> ServiceError { .init(.unauthorized, message) }
    public static func forbidden(_ message: String = "forbidden") -> ServiceError { .init(.forbidden, message) }
    public static func notFound(_ message: String = "not found") -> ServiceError { .init(.notFound, message) }
    public static func conflict(_ message: String) -> ServiceError { .init(.conflict, message) }
    public static func unavailable(_ message: String, retryAfter: Int? = nil) -> ServiceError {
        .init(.unavailable, message, retryAfter: retryAfter)
    }
    public static func rateLimited(_ message: String, retryAfter: Int) -> ServiceError {
        .init(.rateLimited, message, retryAfter: retryAfter)
    }
    public static func `internal`(_ message: String = "internal error") -> ServiceError { .init(.internal, message) }

    public var description: String { "\(self.code): \(self.message)" }
}
