import Synchronization

/// A result that a handle thread fulfils once and an async caller awaits.
///
/// The first of `succeed`, `fail` or the awaiting task's cancellation wins; later ones are
/// ignored, so a confirm that arrives after the caller gave up is harmless.
public final class Promise<Value: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<Value, any Error>)
        case done(Result<Value, any Error>)
    }

    private let state = Mutex(State.pending)

    public init() {}

    /// Whether a result is already set.
    public var isCompleted: Bool {
        self.state.withLock { if case .done = $0 { return true } else { return false } }
    }

    public func succeed(_ value: Value) {
        self.complete(.success(value))
    }

    public func fail(_ error: any Error) {
        self.complete(.failure(error))
    }

    /// Suspends until the result is set; throws `CancellationError` when the task is cancelled
    /// first.
    public func value() async throws -> Value {
        try await withTaskCancellationHandler {
            try await self.outcome()
        } onCancel: {
            self.complete(.failure(CancellationError()))
        }
    }

    /// Suspends until the result is set, even when the awaiting task is cancelled: for a caller
    /// that passes its cancellation on to whoever sets the result, and wants what they made of it.
    public func outcome() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Value, any Error>? = self.state.withLock { state in
                switch state {
                case .pending:
                    state = .waiting(continuation)
                    return nil
                case .done(let result):
                    return result
                case .waiting:
                    preconditionFailure("a Promise is awaited once")
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    /// Sets the result, unless it is set already.
    public func complete(_ result: Result<Value, any Error>) {
        let continuation: CheckedContinuation<Value, any Error>? = self.state.withLock { state in
            switch state {
            case .pending:
                state = .done(result)
                return nil
            case .waiting(let continuation):
                state = .done(result)
                return continuation
            case .done:
                return nil
            }
        }
        continuation?.resume(with: result)
    }
}
