import Synchronization

/// Whether a handle thread's connection is up, as other threads see it.
public final class ConnectedFlag: Sendable {
    private let connected = Atomic(false)
    public init() {}
    public var isConnected: Bool { self.connected.load(ordering: .acquiring) }
    public func set(connected: Bool) { self.connected.store(connected, ordering: .releasing) }
}
