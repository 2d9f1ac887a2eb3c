import Foundation
import Logging
import PostgresNIO

/// How a service reaches PostgreSQL (`DATABASE_URL`) and the schema it owns.
public struct DatabaseConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    /// The service's own schema; every table it creates lives there.
    public var schema: String
    /// The pool's size. It opens connections as they are needed and closes one idle for a
    /// minute. A minimum of 8 kept open saved the idle timer that the pool arms each time a
    /// connection comes back (see ``keepAlive``), but postgres-nio's pool (1.33) crashes the
    /// process on a precondition (`minimumConcurrentConnections <= active`) when it is asked for a
    /// connection after losing some of that minimum to a server restart: delivery died that way
    /// in Tests/e2e/test_crash_under_load.py. With no minimum the precondition always holds.
    public var maximumConnections: Int = 8
    /// How often an idle connection runs `SELECT 1` (`DATABASE_KEEPALIVE_SECONDS`), or nil for
    /// never. postgres-nio's pool arms its keep-alive and idle timers each time a connection
    /// comes back and cancels them at the next statement; at 200 messages/s that cost messaging
    /// and delivery 12 to 24 % of their CPU per message, most of it the keep-alive's
    /// (docs/performance-history.md). So it is off unless set: for a NAT or proxy between the service
    /// and PostgreSQL that drops idle connections. A closed connection is noticed without it
    /// (the socket closes and the pool opens another).
    public var keepAlive: Duration? = nil
    /// How the connection is encrypted and the server checked (`sslmode`).
    public var tlsMode: TLSMode = .disable
    /// `sslrootcert`: the CA certificates (PEM) the server's certificate is checked against,
    /// instead of the system's.
    public var rootCertificatePath: String?
    /// Runs named prepared statements with their generic plan (`plan_cache_mode =
    /// force_generic_plan`). PostgreSQL otherwise plans a statement again at every execution
    /// for as long as its plan for the values at hand looks cheaper than its generic one, which
    /// is always the case for a statement over `unnest` of array parameters: the generic plan
    /// assumes ten elements. Only for services whose prepared statements are all lookups by
    /// key: a range condition's generic plan guesses a third of the table.
    public var genericPlans = false
    /// `idle_in_transaction_session_timeout`: PostgreSQL ends a session that sits in an open
    /// transaction, waiting for its client, this long, and so releases the locks it holds. Without
    /// it a client frozen inside a transaction (a stopped or partitioned replica) held its row
    /// locks until its TCP connection died, and every `create_message` of those threads, on every
    /// replica, waited behind them. Nil (the default here) leaves the server's setting;
    /// services read `DATABASE_IDLE_IN_TRANSACTION_SECONDS` (30 s by default, far above any
    /// pause between the statements of our transactions; docs/foundation.md).
    public var idleInTransactionTimeout: Duration? = nil
    /// `lock_timeout` for every statement of every connection (nil: the server's setting, no
    /// limit): a statement behind a lock whose holder froze fails with 55P03 (``Database/
    /// isUnavailable(_:)``) instead of waiting for the server to end the holder's session. The
    /// migrator lifts it for its own session (its advisory lock waits for another replica's
    /// migrations, its DDL for every transaction on the table).
    public var lockTimeout: Duration? = nil

    /// `sslmode`, with libpq's meanings: `disable` (the default here), `allow` and `prefer` (TLS
    /// when the server offers it, the certificate not checked), `require` (TLS, the certificate
    /// checked only when `sslrootcert` is given), `verify-ca` (TLS, the certificate checked
    /// against the CAs) and `verify-full` (and its host name). Any other value is a configuration
    /// error: until the thirty-eighth session only `require` turned TLS on, and `verify-full`
    /// silently connected in plain text.
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// Parses `postgres://user:password@host:port/database` (`postgresql://` too) with the
    /// optional `sslmode` and `sslrootcert` (``TLSMode``).
    public init(url: String, schema: String) throws {
        guard let components = URLComponents(string: url),
            components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty
        else {
            throw DatabaseError(.invalidConfiguration, "expected postgres://user:password@host:port/database")
        }
        try SQLIdentifier.validate(schema)
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else {
            throw DatabaseError(.invalidConfiguration, "the port must be 1 to 65535")
        }
        self.host = host
        self.port = port
        self.user = components.percentEncodedUser?.removingPercentEncoding ?? "postgres"
        self.password = components.percentEncodedPassword?.removingPercentEncoding
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.database = path.isEmpty ? self.user : path
        self.schema = schema
        let query = components.queryItems ?? []
        if let mode = query.last(where: { $0.name == "sslmode" }).map({ $0.value ?? "" }) {
            guard let tlsMode = TLSMode(rawValue: mode) else {
                let modes = TLSMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw DatabaseError(.invalidConfiguration, "sslmode must be one of \(modes)")
            }
            self.tlsMode = tlsMode
        }
        self.rootCertificatePath = query.last { $0.name == "sslrootcert" }?.value.flatMap { $0.isEmpty ? nil : $0 }
        if let path = self.rootCertificatePath, !FileManager.default.isReadableFile(atPath: path) {
            throw DatabaseError(.invalidConfiguration, "sslrootcert cannot be read: \(path)")
        }
    }

    /// postgres-nio's TLS setting for ``tlsMode`` and ``rootCertificatePath``.
    var tls: PostgresClient.Configuration.TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let path = self.rootCertificatePath { configuration.trustRoots = .file(path) }
        switch self.tlsMode {
        case .disable:
            return .disable
        case .allow, .prefer:
            configuration.certificateVerification = .none
            return .prefer(configuration)
        case .require:
            configuration.certificateVerification = self.rootCertificatePath == nil ? .none : .noHostnameVerification
            return .require(configuration)
        case .verifyCA:
            configuration.certificateVerification = .noHostnameVerification
            return .require(configuration)
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
            return .require(configuration)
        }
    }

    /// A pooled client whose connections resolve unqualified names in the service's schema.
    public func makeClient(logger: Logger) -> PostgresClient {
        PostgresClient(configuration: self.clientConfiguration, backgroundLogger: logger)
    }

    /// ``makeClient(logger:)``, its calls guarded against a lost connection (``Database``).
    public func makeDatabase(logger: Logger) -> Database {
        Database(client: self.makeClient(logger: logger), logger: logger)
    }

    /// The postgres-nio configuration ``makeClient(logger:)`` uses: up to ``maximumConnections``,
    /// keep-alive only when ``keepAlive`` is set.
    public var clientConfiguration: PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: self.host, port: self.port, username: self.user, password: self.password, database: self.database,
            tls: self.tls)
        configuration.options.maximumConnections = self.maximumConnections
        configuration.options.minimumConnections = 0
        configuration.options.keepAliveBehavior = self.keepAlive.map { .init(frequency: $0) }
        configuration.options.additionalStartupParameters = [("search_path", self.schema)]
        if self.genericPlans {
            configuration.options.additionalStartupParameters.append(("plan_cache_mode", "force_generic_plan"))
        }
        if let timeout = self.idleInTransactionTimeout {
            configuration.options.additionalStartupParameters.append(
                ("idle_in_transaction_session_timeout", "\(Self.milliseconds(timeout))"))
        }
        if let timeout = self.lockTimeout {
            configuration.options.additionalStartupParameters.append(("lock_timeout", "\(Self.milliseconds(timeout))"))
        }
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// `duration` in whole milliseconds (rounded up, at least 1): PostgreSQL's unit for timeouts,
    /// where 0 would turn them off.
    public static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return max(1, milliseconds)
    }
}

/// An error of the database layer with a stable code.
public struct DatabaseError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate var name: String
        public static let invalidConfiguration = Code(name: "invalid_configuration")
        public static let migrationChanged = Code(name: "migration_changed")
        public static let migrationFailed = Code(name: "migration_failed")
        /// A statement's connection closed and the statement was never answered (``Database``).
        public static let connectionLost = Code(name: "connection_lost")
        /// A call found no connection in time: none was leased, so nothing of it ran
        /// (``Database``). Until the fifty-fifth session it was ``connectionLost``, and a look for
        /// a lost commit ran after every write that got no connection (a review).
        public static let noConnection = Code(name: "no_connection")
        public var description: String { self.name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(self.code): \(self.message)" }
}

/// SQL identifiers that come from configuration (schema names). They cannot be bound as
/// parameters, so they are checked against a strict pattern and quoted.
public enum SQLIdentifier {
    public static func validate(_ name: String) throws {
        let valid =
            !name.isEmpty && name.count <= 63
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
            && !("0"..."9").contains(name.unicodeScalars.first!)
        guard valid else {
            throw DatabaseError(.invalidConfiguration, "'\(name)' is not a valid schema name ([a-z_][a-z0-9_]*)")
        }
    }

    /// The quoted form of a validated identifier.
    public static func quoted(_ name: String) -> String { "\"\(name)\"" }
}
