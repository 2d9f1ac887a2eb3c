import MessengerContracts
import PostgresNIO

/// postgres-nio's description of a `PSQLError` is "Generic description to prevent accidental
/// leakage of sensitive data", which hides a deadlock or a lost connection alike, and its debug
/// description holds the statement's values and the server's detail (`Key (lower(email))=(…)
/// already exists`). The logs get the error's code, its SQLSTATE and the server's message.
extension PSQLError: LogDescribable {
    public var logDescription: String {
        var parts = ["PSQLError(\(self.code)"]
        if let state = self.serverInfo?[.sqlState] { parts.append("sqlstate \(state)") }
        if let message = self.serverInfo?[.message] { parts.append(message) }
        if let underlying = self.underlying { parts.append("\(LoggedError(underlying))") }
        return parts.joined(separator: ", ") + ")"
    }
}

extension PostgresTransactionError: LogDescribable {
    public var logDescription: String {
        let parts: [(String, (any Error)?)] = [
            ("begin", self.beginError), ("body", self.closureError), ("rollback", self.rollbackError),
            ("commit", self.commitError),
        ]
        return "transaction failed: "
            + parts.compactMap { name, error in error.map { "\(name): \(LoggedError($0))" } }.joined(separator: "; ")
    }
}
