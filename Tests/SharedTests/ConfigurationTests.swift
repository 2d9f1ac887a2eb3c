import MessengerAMQP
import MessengerPostgres
import MessengerServiceKit
import PostgresNIO
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    let minimal = ["RABBITMQ_URI": "amqp://guest:guest@127.0.0.1:5673/%2f"]

    @Test("a missing required variable is named in the error")
    func missingRequired() {
        let environment = ServiceEnvironment([:])
        #expect(throws: ConfigurationError(variable: "RABBITMQ_URI", problem: "is required but not set")) {
            try ServiceSettings(
                name: "auth", adminPortVariable: "AUTH_ADMIN_PORT", defaultAdminPort: 9101, environment: environment)
        }
    }

    @Test(
        "a malformed value is named in the error",
        arguments: [
            ("AUTH_ADMIN_PORT", "99999"), ("AUTH_ADMIN_PORT", "http"), ("RABBITMQ_URI", "http://nope"),
            ("LOG_LEVEL", "loud"), ("RPC_TIMEOUT_MS", "-1"), ("RABBITMQ_QUEUE_TYPE", "stream"),
        ])
    func malformed(variable: String, value: String) {
        var variables = self.minimal
        variables[variable] = value
        let environment = ServiceEnvironment(variables)
        #expect {
            try ServiceSettings(
                name: "auth", adminPortVariable: "AUTH_ADMIN_PORT", defaultAdminPort: 9101, environment: environment)
        } throws: { error in
            (error as? ConfigurationError)?.variable == variable
        }
    }

    @Test("defaults apply when optional variables are unset")
    func defaults() throws {
        let settings = try ServiceSettings(
            name: "auth", adminPortVariable: "AUTH_ADMIN_PORT", defaultAdminPort: 9101,
            environment: ServiceEnvironment(self.minimal))
        #expect(settings.adminPort == 9101)
        #expect(settings.queueType == "classic")
        #expect(settings.rpcTimeout == .seconds(5))
        #expect(settings.amqp.port == 5673)
        #expect(settings.amqp.virtualHost == "/")
    }

    @Test("AMQP URIs parse as RabbitMQ documents them")
    func amqpURI() throws {
        let custom = try AMQPConfiguration(uri: "amqp://app%40x:p%3Ass@broker.internal:5680/chat%2Fprod?heartbeat=15")
        #expect(custom.host == "broker.internal")
        #expect(custom.port == 5680)
        #expect(custom.user == "app@x")
        #expect(custom.password == "p:ss")
        #expect(custom.virtualHost == "chat/prod")
        #expect(custom.heartbeat == 15)
        #expect(try AMQPConfiguration(uri: "amqp://localhost").virtualHost == "/")
        #expect(throws: AMQPError.self) { try AMQPConfiguration(uri: "amqps//broken") }
        #expect(throws: AMQPError.self) { try AMQPConfiguration(uri: "amqp://localhost:70789") }
        #expect(throws: AMQPError.self) { try AMQPConfiguration(uri: "amqp://localhost?heartbeat=abc") }
    }

    @Test(".env lines are read as docker compose and python-dotenv read them")
    func dotEnv() throws {
        let environment = ServiceEnvironment(
            dotEnv: """
                # a comment
                MEDIA_DIR="/srv/media"
                export LOG_LEVEL=debug
                CORS_ORIGIN='https://chat.example'
                PORT=5000 # the public port
                JWT_ISSUER=a=b
                not a line
                EMPTY=
                SECRET="a b" # a comment after the quotes
                PATTERN='#1'
                PASSWORD="ab\\"c\\\\d" # quoted
                RAW='a\\b'
                WINDOWS="C:\\media"
                """)
        #expect(environment.optional("MEDIA_DIR") == "/srv/media")
        #expect(environment.optional("LOG_LEVEL") == "debug")
        #expect(environment.optional("CORS_ORIGIN") == "https://chat.example")
        #expect(environment.optional("PORT") == "5000")
        #expect(environment.optional("JWT_ISSUER") == "a=b")
        #expect(environment.asSet("EMPTY") == "")
        #expect(environment.optional("SECRET") == "a b")
        #expect(environment.optional("PATTERN") == "#1")
        #expect(environment.optional("PASSWORD") == #"ab"c\d"#)
        #expect(environment.optional("RAW") == #"a\b"#)
        #expect(environment.optional("WINDOWS") == #"C:\media"#)
    }

    @Test("the URI's heartbeat is kept unless RABBITMQ_HEARTBEAT is set")
    func heartbeat() throws {
        func heartbeat(_ variables: [String: String]) throws -> Int {
            try ServiceSettings(
                name: "test", adminPortVariable: "TEST_ADMIN_PORT", defaultAdminPort: 9199,
                environment: ServiceEnvironment(variables)
            ).amqp.heartbeat
        }
        #expect(try heartbeat(["RABBITMQ_URI": "amqp://localhost"]) == 30)
        #expect(try heartbeat(["RABBITMQ_URI": "amqp://localhost?heartbeat=5"]) == 5)
        #expect(try heartbeat(["RABBITMQ_URI": "amqp://localhost?heartbeat=5", "RABBITMQ_HEARTBEAT": "10"]) == 10)
    }

    @Test("DATABASE_URL parses, and schema names are checked")
    func databaseURL() throws {
        let configuration = try DatabaseConfiguration(url: "postgres://app:s3cret@db:6543/chat", schema: "auth")
        #expect(configuration.host == "db")
        #expect(configuration.port == 6543)
        #expect(configuration.user == "app")
        #expect(configuration.password == "s3cret")
        #expect(configuration.database == "chat")
        #expect(throws: DatabaseError.self) { try DatabaseConfiguration(url: "postgres://db/chat", schema: "auth; DROP") }
        #expect(throws: DatabaseError.self) { try DatabaseConfiguration(url: "mysql://db/chat", schema: "auth") }
    }

    @Test(
        "the pool's size, keep-alive and idle-in-transaction timeout come from the environment; keep-alive is off unless set; no minimum"
    )
    func databasePool() throws {
        let url = ["DATABASE_URL": "postgres://app@db/chat"]
        let defaults = try DatabaseConfiguration(environment: ServiceEnvironment(url), schema: "auth")
        #expect(defaults.maximumConnections == 8)
        #expect(defaults.keepAlive == nil)
        #expect(defaults.clientConfiguration.options.minimumConnections == 0)
        #expect(defaults.clientConfiguration.options.maximumConnections == 8)
        #expect(defaults.clientConfiguration.options.keepAliveBehavior == nil)
        #expect(defaults.idleInTransactionTimeout == .seconds(30))
        #expect(
            defaults.clientConfiguration.options.additionalStartupParameters.contains {
                $0 == ("idle_in_transaction_session_timeout", "30000")
            })
        let set = try DatabaseConfiguration(
            environment: ServiceEnvironment(url.merging(["DATABASE_POOL_SIZE": "3", "DATABASE_KEEPALIVE_SECONDS": "45"]) { $1 }),
            schema: "auth")
        #expect(set.maximumConnections == 3)
        #expect(set.keepAlive == .seconds(45))
        #expect(set.clientConfiguration.options.minimumConnections == 0)
        #expect(set.clientConfiguration.options.keepAliveBehavior?.frequency == .seconds(45))
        let off = try DatabaseConfiguration(
            environment: ServiceEnvironment(url.merging(["DATABASE_IDLE_IN_TRANSACTION_SECONDS": "0"]) { $1 }),
            schema: "auth")
        #expect(off.idleInTransactionTimeout == nil)
        #expect(
            !off.clientConfiguration.options.additionalStartupParameters.contains {
                $0.0 == "idle_in_transaction_session_timeout"
            })
        // No lock_timeout unless the service asks for one (messaging: its RPC timeout).
        #expect(!defaults.clientConfiguration.options.additionalStartupParameters.contains { $0.0 == "lock_timeout" })
        var bounded = defaults
        bounded.lockTimeout = .milliseconds(5_000)
        #expect(bounded.clientConfiguration.options.additionalStartupParameters.contains { $0 == ("lock_timeout", "5000") })
        #expect(throws: ConfigurationError.self) {
            try DatabaseConfiguration(
                environment: ServiceEnvironment(url.merging(["DATABASE_KEEPALIVE_SECONDS": "-5"]) { $1 }), schema: "auth")
        }
        // The outbox relay holds a connection for good: a pool of one would serve nothing else.
        #expect(throws: ConfigurationError.self) {
            try DatabaseConfiguration(
                environment: ServiceEnvironment(url.merging(["DATABASE_POOL_SIZE": "1"]) { $1 }), schema: "auth")
        }
    }
}
