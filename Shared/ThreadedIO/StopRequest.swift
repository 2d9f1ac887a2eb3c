/// The stop asked of a thread that owns a C handle (a driver's run loop on its
/// ``HandleThread``): answered once the thread has stopped. A second stop asked before that
/// answers the earlier one at once (its caller then waits for the thread to end): kept alone,
/// the earlier one was never answered, and `HandleThread.stop()` may be called twice at once.
public struct StopRequest {
    private var promise: Promise<Void>?

    public init() {}

    /// Whether a stop was asked.
    public var isAsked: Bool { self.promise != nil }

    /// A stop is asked, to be answered through `promise`.
    public mutating func ask(_ promise: Promise<Void>) {
        self.promise?.succeed(())
        self.promise = promise
    }

    /// The thread has stopped: the stop asked, if any, is answered.
    public func answer() {
        self.promise?.succeed(())
    }
}
