import Logging

/// The logging metadata keys every service uses, in one place.
public enum LogKey {
    /// Follows one client request across services.
    public static let correlationID = "correlation_id"
    public static let service = "service"
    public static let instance = "instance"
    public static let error = "error"
}

/// Sets up swift-log once per process: one line per entry on standard error, with metadata.
public enum MessengerLogging {
    public static func bootstrap(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
