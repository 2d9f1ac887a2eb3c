import Foundation
import Logging
import MessengerContracts
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

/// What a service's `build` function gets: its configuration source, metrics registry and logger.
public struct ServiceContext: Sendable {
    public var environment: ServiceEnvironment
    public var registry: PrometheusCollectorRegistry
    public var logger: Logger
}

/// The entry point every executable shares: reads the environment (and `.env`), sets up
/// logging and metrics, builds the service's parts, and runs them in a `ServiceGroup` until
/// SIGTERM or SIGINT. Services are shut down in reverse order of the list, so list
/// infrastructure (database, broker) first and the workers that use it after.
///
/// A configuration error stops the process at start with one line naming the variable and exit
/// status 1; a failure while running exits with status 1; a graceful stop exits with 0.
public enum ServiceMain {
    public static func run(name: String, build: @Sendable (ServiceContext) async throws -> [any Service]) async {
        // Swift concurrency runs its jobs on NIO's event loops instead of a pool of its own, so a
        // task that awaits I/O resumes on the loop that did it, without a hand-off between threads
        // (those hand-offs were most of a service's CPU time under load). Nothing blocking runs
        // on the global executor: bcrypt, files and libcurl have thread pools of their own, and
        // librabbitmq-c and hiredis their own threads.
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        // A write to a socket its peer closed fails with EPIPE instead of killing the process:
        // hiredis writes with `write()`, and until NIO made its first socket nothing had said so.
        signal(SIGPIPE, SIG_IGN)
        let environment: ServiceEnvironment
        do {
            environment = try ServiceEnvironment.load()
        } catch {
            MessengerLogging.bootstrap(level: .info)
            Logger(label: name).critical("configuration error: cannot read the .env file: \(error)")
            exit(1)
        }
        let level = Logger.Level(rawValue: environment.string("LOG_LEVEL", default: "info").lowercased()) ?? .info
        MessengerLogging.bootstrap(level: level)
        var logger = Logger(label: name)
        logger[metadataKey: LogKey.service] = .string(name)
        let registry = MessengerMetrics.bootstrap()

        let services: [any Service]
        let shutdownTimeout: Duration
        do {
            shutdownTimeout = .seconds(try environment.int("SHUTDOWN_TIMEOUT_SECONDS", default: 20, in: 1...3600))
            services = try await build(ServiceContext(environment: environment, registry: registry, logger: logger))
        } catch let error as ConfigurationError {
            logger.critical("\(error)")
            exit(1)
        } catch {
            logger.critical("cannot start: \(LoggedError(error))")
            exit(1)
        }

        let group = ServiceGroup(
            configuration: Self.groupConfiguration(services: services, shutdownTimeout: shutdownTimeout, logger: logger))
        do {
            try await group.run()
            logger.info("stopped")
        } catch {
            logger.critical("stopped on error: \(LoggedError(error))")
            exit(1)
        }
    }

    /// How a service's parts run: in order, each one's end (a failure or not) stopping the
    /// others gracefully on SIGTERM or SIGINT, in reverse order.
    ///
    /// A graceful stop may take `shutdownTimeout` (`SHUTDOWN_TIMEOUT_SECONDS`); what still runs
    /// then is cancelled: a publish waiting for a confirm the broker holds back under a resource
    /// alarm gives up, and the messages it would have acked go back to their queue for the next
    /// replica. Until the forty-fourth session a service told to stop during an alarm waited
    /// until it was killed. Cancelled parts that do not end within ``cancellationLimit`` stop the
    /// process with a fatal error, so that it always ends.
    public static func groupConfiguration(services: [any Service], shutdownTimeout: Duration, logger: Logger)
        -> ServiceGroupConfiguration
    {
        var configuration = ServiceGroupConfiguration(
            services: services.map {
                .init(
                    service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                    failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout
        configuration.maximumCancellationDuration = Self.cancellationLimit
        return configuration
    }

    /// How long cancelled parts may take to end: a broker connection takes at most its confirms'
    /// grace and its close margin (10 s), the rest far less.
    public static let cancellationLimit: Duration = .seconds(15)
}
