import MessengerContracts
import Synchronization

/// A value made during start-up (after migrations, say) that request handlers use once it is
/// set. Handlers run only after start-up, so `get()` failing means a wiring mistake.
public final class Deferred<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)

    public init() {}

    public func set(_ newValue: Value) {
        self.value.withLock { $0 = newValue }
    }

    public func get() throws -> Value {
        guard let value = self.value.withLock({ $0 }) else { throw ServiceError.unavailable("the service is starting") }
        return value
    }
}
