/// An error as the logs show it: by ``LogDescribable/logDescription`` when its type says what
/// is safe and useful to log, by its description otherwise. Write `"\(LoggedError(error))"`.
public struct LoggedError: CustomStringConvertible, Sendable {
    public let description: String

    public init(_ error: any Error) {
        self.description = (error as? any LogDescribable)?.logDescription ?? "\(error)"
    }
}

/// An error type whose own descriptions do not suit the logs: one hides the cause, the other
/// holds a statement's values (postgres-nio's `PSQLError`, made to conform in
/// MessengerPostgres).
public protocol LogDescribable: Error {
    /// What an operator needs to know of the error, without personal data.
    var logDescription: String { get }
}
