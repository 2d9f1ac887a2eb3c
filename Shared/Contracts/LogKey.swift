/// The logging metadata keys every service uses, in one place.
public enum LogKey {
    /// Follows one client request across services (``RequestCorrelation``).
    public static let correlationID = "correlation_id"
    public static let service = "service"
    public static let instance = "instance"
    public static let error = "error"
}
