import BenchSupport
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization

/// Opens `count` authenticated Socket.IO WebSocket clients of one user that then stay idle
/// (answering pings), and measures the gateway's resident memory per connection; then closes
/// them and measures what the gateway gives back.
enum IdleSockets {
    static func run(url: String, token: String, count: Int, gatewayPID: Int32, logger: Logger) async throws -> (
        connected: Int, before: Int, after: Int, afterClose: Int
    ) {
        let tally = Tally()
        let before = ProcessStats.residentBytes(gatewayPID)
        var after = 0
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    do {
                        try await IdleSocketClient.run(
                            url: url, token: token, logger: logger,
                            connected: { tally.connected.add(1, ordering: .relaxed) })
                    } catch {
                        tally.failed.add(1, ordering: .relaxed)
                    }
                }
                if index % 200 == 199 { try await Task.sleep(for: .milliseconds(20)) }
                if index % 5000 == 4999 {
                    say("    idle: \(index + 1)/\(count) opened, \(tally.connected.load(ordering: .relaxed)) connected")
                }
            }
            let deadline = ContinuousClock.now + .seconds(120)
            while tally.connected.load(ordering: .relaxed) + tally.failed.load(ordering: .relaxed) < count,
                ContinuousClock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(200))
            }
            // Let the gateway settle (replays done, buffers released).
            try await Task.sleep(for: .seconds(3))
            after = ProcessStats.residentBytes(gatewayPID)
            group.cancelAll()
        }
        try await Task.sleep(for: .seconds(5))
        return (tally.connected.load(ordering: .relaxed), before, after, ProcessStats.residentBytes(gatewayPID))
    }
}

/// Connections counted across the clients' tasks.
private final class Tally: Sendable {
    let connected = Atomic(0)
    let failed = Atomic(0)
}
