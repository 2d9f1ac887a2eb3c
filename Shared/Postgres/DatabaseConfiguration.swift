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
    public var requireTLS = false
    /// Runs named prepared statements with their generic plan (`plan_cache_mode =
    /// force_generic_plan`). PostgreSQL otherwise plans a statement again at every execution
    /// for as long as its plan for the values at hand looks cheaper than its generic one, which
    /// is always the case for a statement over `unnest` of array parameters: the generic plan
    /// assumes ten elements. Only for services whose prepared statements are all lookups by
    /// key: a range condition's generic plan guesses a third of the table.
    public var genericPlans = false

    /// Parses `postgres://user:password@host:port/database` (`postgresql://` too; `sslmode=require`
    /// turns TLS on).
    public init(url: String, schema: String) throws {
        guard let components = URLComponents(string: url),
            components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty
        else {
            throw DatabaseError(.invalidConfiguration, "expected postgres://user:password@host:port/database")
        }
        try SQLIdentifier.validate(schema)
        self.host = host
        self.port = components.port ?? 5432
        self.user = components.percentEncodedUser?.removingPercentEncoding ?? "postgres"
        self.password = components.percentEncodedPassword?.removingPercentEncoding
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.database = path.isEmpty ? self.user : path
        self.schema = schema
        self.requireTLS = components.queryItems?.contains { $0.name == "sslmode" && $0.value == "require" } ?? false
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
            tls: self.requireTLS ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.maximumConnections = self.maximumConnections
        configuration.options.minimumConnections = 0
        configuration.options.keepAliveBehavior = self.keepAlive.map { .init(frequency: $0) }
        configuration.options.additionalStartupParameters = [("search_path", self.schema)]
        if self.genericPlans {
            configuration.options.additionalStartupParameters.append(("plan_cache_mode", "force_generic_plan"))
        }
        configuration.options.connectTimeout = .seconds(5)
        return configuration
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
