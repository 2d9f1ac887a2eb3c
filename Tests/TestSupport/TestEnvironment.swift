import Foundation
import Logging
import MessengerAMQP
import MessengerPostgres
import MessengerRedis

/// Where the real servers and services of a test run are: the variables `scripts/test.sh`
/// exports (from `.run/local.env`), with the local defaults when run by hand.
public enum TestEnvironment {
    public static func value(_ name: String, default defaultValue: String) -> String {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 } ?? defaultValue
    }

    public static var rabbitMQURI: String { value("RABBITMQ_URI", default: "amqp://guest:guest@127.0.0.1:5673/%2f") }
    public static var databaseURL: String { value("DATABASE_URL", default: "postgres://postgres@127.0.0.1:5433/messenger") }
    public static var redis: RedisConfiguration {
        RedisConfiguration(
            host: value("REDIS_HOST", default: "127.0.0.1"), port: Int(value("REDIS_PORT", default: "6380")) ?? 6380)
    }
    /// The variable prefix and default admin port of each service.
    static let services: [String: (prefix: String, adminPort: String)] = [
        "socket-gateway": ("GATEWAY", "9100"), "auth": ("AUTH", "9101"), "messaging": ("MESSAGING", "9102"),
        "media": ("MEDIA", "9103"), "delivery": ("DELIVERY", "9104"),
    ]

    /// A service's admin base URL: `<PREFIX>_HOST` (default 127.0.0.1) and `<PREFIX>_ADMIN_PORT`.
    public static func adminURL(_ service: String) -> String {
        let (prefix, port) = services[service]!
        return "http://\(value("\(prefix)_HOST", default: "127.0.0.1")):\(value("\(prefix)_ADMIN_PORT", default: port))"
    }

    public static var gatewayAdminURL: String { adminURL("socket-gateway") }

    /// The gateway's public base URL (`GATEWAY_HOST`, `PORT`).
    public static var gatewayURL: String {
        "http://\(value("GATEWAY_HOST", default: "127.0.0.1")):\(value("PORT", default: "5000"))"
    }
    /// `scripts/infra.sh`, for tests that stop and start servers.
    public static var infraScript: String {
        value("MESSENGER_INFRA_SCRIPT", default: FileManager.default.currentDirectoryPath + "/scripts/infra.sh")
    }
    /// Where the service executables were built.
    public static var binaryDirectory: String {
        value("MESSENGER_BIN_DIR", default: FileManager.default.currentDirectoryPath + "/.build/debug")
    }

    /// The environment to start a service process with: this process's, with the server
    /// addresses filled in.
    public static var serviceVariables: [String: String] {
        var variables = ProcessInfo.processInfo.environment
        variables["RABBITMQ_URI"] = rabbitMQURI
        variables["DATABASE_URL"] = databaseURL
        variables["REDIS_HOST"] = redis.host
        variables["REDIS_PORT"] = String(redis.port)
        variables["ENV_FILE"] = "/dev/null"
        return variables
    }

    public static func amqpConfiguration(name: String = "test") throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(uri: rabbitMQURI)
        configuration.connectionName = "\(name)-\(UUID().uuidString.prefix(6))"
        configuration.heartbeat = 5
        return configuration
    }

    public static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }

    /// A name no other test (or earlier run) uses.
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
    }
}
