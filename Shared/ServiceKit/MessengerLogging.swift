import Logging
import MessengerContracts

/// Sets up swift-log once per process: one line per entry on standard error, with metadata
/// (``MessengerLogHandler``), and the correlation id of the request being served
/// (``RequestCorrelation``) on every line written while it is bound.
public enum MessengerLogging {
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap(
            { label, provider in MessengerLogHandler(label: label, level: level, metadataProvider: provider) },
            metadataProvider: Self.correlation)
    }

    /// `correlation_id` while a request correlation is bound.
    public static let correlation = Logger.MetadataProvider {
        guard let id = RequestCorrelation.id else { return [:] }
        return [LogKey.correlationID: .string(id)]
    }
}
