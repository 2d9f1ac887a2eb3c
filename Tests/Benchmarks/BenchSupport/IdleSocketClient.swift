import HummingbirdWSClient
import Logging

/// The cheapest Socket.IO client there is, for opening thousands: a WebSocket that sends
/// CONNECT with `token`, answers pings, and reports what arrives, until the connection ends or
/// `stop` says so (checked after each frame).
public enum IdleSocketClient {
    public static func run(
        url: String, token: String, logger: Logger, connected: @escaping @Sendable () -> Void,
        event: @escaping @Sendable () -> Void = {}, stop: @escaping @Sendable () -> Bool = { false }
    ) async throws {
        try await WebSocketClient.connect(url: url, logger: logger) { inbound, outbound, _ in
            var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
            guard case .text(let open)? = try await messages.next(), open.hasPrefix("0{") else { return }
            try await outbound.write(.text(#"40{"token":"\#(token)"}"#))
            while let message = try await messages.next() {
                guard case .text(let text) = message else { continue }
                if text == "2" {
                    try await outbound.write(.text("3"))
                } else if text.hasPrefix("40{") {
                    connected()
                } else if text.hasPrefix("42") {
                    event()
                }
                if stop() { break }
            }
            try? await outbound.close(.normalClosure, reason: nil)
        }
    }
}
