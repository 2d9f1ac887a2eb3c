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
            return Self.causes(of: error).contains(where: Self.isUnavailable)
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
            return Self.causes(of: error).contains(where: Self.isLockTimeout)
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
            return Self.causes(of: error).contains(where: Self.isConflict)
        }
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    /// Whether `error` may be a statement's failed preparation, which postgres-nio would repeat for
    /// the connection's life. postgres-nio (1.33) prepares a named statement once per connection
    /// and remembers the outcome, a failure too: every later execution of that statement on the
    /// connection fails at once with the same error, and is never sent. Preparing takes the locks
    /// of the tables a statement names, so a table held past `lock_timeout` (a migration's DDL,
    /// a `LOCK TABLE`, a frozen session) failed it with 55P03, and then that connection's writes
    /// failed with 55P03 until the service restarted: messaging's `create_message` and its outbox
    /// relay did, after a stall of a few seconds (until the sixty-first session). A deadlock, a
    /// cancel, a lack of resources, an I/O error, a race with DDL, a permission revoked for a
    /// moment or an aborted transaction can fail a preparation too, and which step failed cannot
    /// be told from the error. So every failure counts but those only a statement's execution
    /// raises: a bound value refused (class 22), a constraint (class 23: messaging meets a
    /// retry's unique key, 23505, in its normal course), a serialization failure (40001) and a
    /// raised exception (P0001). ``Database`` closes the connection any other failure came from
    /// rather than hand it out again; a deadlock (delivery's acks can meet one and are retried)
    /// costs a reconnection.
    public static func mayHaveFailedPreparation(_ error: any Error) -> Bool {
        if let error = error as? PostgresTransactionError {
            let rollback = error.rollbackError.map { [$0] } ?? []
            return (Self.causes(of: error) + rollback).contains(where: Self.mayHaveFailedPreparation)
        }
        guard let error = error as? PSQLError else { return false }
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else { return true }
        return !(state.hasPrefix("22") || state.hasPrefix("23") || state == "40001" || state == "P0001")
    }

    /// What failed in a transaction: its `BEGIN`, its body or its `COMMIT` (what the
    /// classifications above look at; a failed rollback only follows one of them).
    static func causes(of error: PostgresTransactionError) -> [any Error] {
        [error.beginError, error.closureError, error.commitError].compactMap { $0 }
    }

    /// Whether a caller may send the same request again: the database was away or busy
    /// (``isUnavailable(_:)``), or it rolled the work back to break a deadlock or a
    /// serialization conflict (``isConflict(_:)``). RPC handlers answer these `unavailable`.
    public static func isRetryable(_ error: any Error) -> Bool {
        Self.isUnavailable(error) || Self.isConflict(error)
    }
}
