import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash points for fault tests: `FAULT_POINTS=after_commit` makes the process kill itself with
/// SIGKILL (no cleanup, as a power cut would) when it reaches the named point. Empty, and free,
/// in normal runs.
public struct FaultPoints: Sendable {
    private let enabled: Set<String>

    public init(environment: ServiceEnvironment) {
        let names = environment.optional("FAULT_POINTS") ?? ""
        self.enabled = Set(names.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// Dies at once when `point` is enabled.
    public func crash(at point: String) {
        guard self.enabled.contains(point) else { return }
        kill(getpid(), SIGKILL)
    }
}
