import Metrics
import SocketIOProtocol

/// What the gateway counts for `/metrics` besides its HTTP requests (Hummingbird's
/// `MetricsMiddleware`, by route, method and status): the sockets connected to this process,
/// and each socket command by event and outcome, with how long it took.
enum GatewayMetrics {
    /// `socketio_connected_sockets`: up when a CONNECT is accepted, down when that socket leaves.
    static let connectedSockets = Meter(label: "socketio_connected_sockets")

    /// The instruments of one command, made once when the command is registered (the events
    /// are the registered ones, so the labels stay few).
    struct Command: Sendable {
        private let succeeded: Counter
        private let failed: Counter
        private let duration: Timer

        init(event: String) {
            self.succeeded = Counter(label: "socket_commands_total", dimensions: [("event", event), ("outcome", "ok")])
            self.failed = Counter(label: "socket_commands_total", dimensions: [("event", event), ("outcome", "error")])
            self.duration = Timer(label: "socket_command_duration_seconds", dimensions: [("event", event)])
        }

        /// Counts a command answered with `reply` (`{ok: true, ...}` or `{ok: false, error}`).
        func record(_ reply: JSONValue, since start: ContinuousClock.Instant) {
            self.duration.record(duration: ContinuousClock.now - start)
            if case .bool(true)? = reply["ok"] { self.succeeded.increment() } else { self.failed.increment() }
        }
    }
}
