import MessengerServiceKit
import ServiceLifecycle

/// Has the gateway's sockets push again what they were sent and have not acknowledged
/// (``EventStreams/pushAgainUnacknowledged(after:atMost:)``): a look every `after / 2`, between
/// a second and a minute apart. Each socket's first push again comes `after` once the event went
/// out (`SOCKET_REDELIVERY_SECONDS`, 600 by default: past delivery's own retries, 2 s to 5 min),
/// then after twice as long each time, an hour at most.
struct UnacknowledgedEventsSweep: Service {
    let streams: EventStreams
    let after: Duration

    static let longestWait: Duration = .seconds(3600)

    func run() async throws {
        let interval = min(max(self.after / 2, .seconds(1)), .seconds(60))
        await cancelWhenGracefulShutdown {
            while (try? await LoopTimer.sleep(for: interval)) != nil {
                await self.streams.pushAgainUnacknowledged(after: self.after, atMost: Self.longestWait)
            }
        }
    }
}
