import PostgresNIO
import _ConnectionPoolModule

extension Database {
    /// Whether `error` says that PostgreSQL could not be reached, or went away under a statement,
    /// rather than that the statement was wrong: a lost or refused connection, a call the
    /// watchdog failed, a server shutting down, crashed or still recovering (SQLSTATE class 08,
    /// 57P01 to 57P03), a pool that gave up connecting (its circuit breaker trips after a minute
    /// of failed attempts, and then fails every call at once until a connection succeeds) or is
    /// shutting down. Also a lock that was not granted in time (55P03, `lock_timeout`: another
    /// session held it, perhaps frozen) and a session the server ended because it sat idle in a
    /// transaction (25P03, `idle_in_transaction_session_timeout`; the statements after it fail as
    /// a closed connection): nothing of the work was committed. A caller may retry such a failure
    /// (the contract's `unavailable`).
    public static func isUnavailable(_ error: any Error) -> Bool {
        switch error {
        case let error as DatabaseError:
            return error.code == .connectionLost || error.code == .noConnection
        case let error as ConnectionPoolError:
            return error == .connectionCreationCircuitBreakerTripped || error == .poolShutdown
        case let error as PostgresTransactionError:
            let causes: [(any Error)?] = [error.beginError, error.closureError, error.commitError]
            return causes.contains { $0.map(Self.isUnavailable) ?? false }
        case let error as PSQLError:
            switch error.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown:
                return true
            case .server:
                guard let state = error.serverInfo?[.sqlState] else { return false }
                return state.hasPrefix("08") || Self.unavailableStates.contains(state)
            default:
                return false
            }
        default:
            return false
        }
    }

    /// The SQLSTATEs outside class 08 that ``isUnavailable(_:)`` takes for a database that is
    /// away or busy: admin shutdown, crash shutdown, cannot connect now, lock not available, and
    /// idle-in-transaction session timeout.
    static let unavailableStates: Set<String> = ["57P01", "57P02", "57P03", "55P03", "25P03"]

    /// Whether `error` is a lock not granted within `lock_timeout` (55P03): another session held
    /// it that long, perhaps frozen inside its transaction.
    public static func isLockTimeout(_ error: any Error) -> Bool {
        switch error {
        case let error as PostgresTransactionError:
            let causes: [(any Error)?] = [error.beginError, error.closureError, error.commitError]
            return causes.contains { $0.map(Self.isLockTimeout) ?? false }
        case let error as PSQLError:
            return error.serverInfo?[.sqlState] == "55P03"
        default:
            return false
        }
    }

    /// Whether PostgreSQL aborted the statement to break a deadlock (40P01) or a serialization
    /// conflict (40001): the same work may be run again at once.
    public static func isConflict(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError {
            let causes: [(any Error)?] = [error.beginError, error.closureError, error.commitError]
            return causes.contains { $0.map(Self.isConflict) ?? false }
        }
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    /// Whether a caller may send the same request again: the database was away or busy
    /// (``isUnavailable(_:)``), or it rolled the work back to break a deadlock or a
    /// serialization conflict (``isConflict(_:)``). RPC handlers answer these `unavailable`.
    public static func isRetryable(_ error: any Error) -> Bool {
        Self.isUnavailable(error) || Self.isConflict(error)
    }
}
