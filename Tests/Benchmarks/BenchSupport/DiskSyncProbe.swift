import Foundation
import Synchronization
import ThreadedIO

/// The disk's commit latency, measured beside a rate step: every `interval`, 4 KiB written and
/// flushed (`fdatasync`) to a file on the servers' filesystem, which is what PostgreSQL does for
/// every commit and RabbitMQ for persistent messages before it confirms them. A stall of the disk
/// (this machine shares its storage) delays every commit of that moment; the probe sees it with
/// the same timestamps as the deliveries it delays. The probe's own flushes (50 a second) are
/// few beside the servers' (hundreds a second at 200 messages a second).
public final class DiskSyncProbe: Sendable {
    /// One step's flush latencies, in milliseconds.
    public struct Figures: Codable, Sendable {
        public var samples: Int
        public var p50: Double
        public var p99: Double
        public var p999: Double
        public var max: Double
        /// The flushes over `stallThresholdMs`, oldest first (at most 50).
        public var stalls: [Stall]
        /// Why the probe stopped early (its file could not be opened, written or flushed).
        public var failure: String?
    }

    /// One slow flush: when it started (ISO 8601 with milliseconds) and how long it took.
    public struct Stall: Codable, Sendable {
        public var at: String
        public var ms: Double
    }

    public static let stallThresholdMs = 10.0

    private struct State {
        var running = false
        var samples: [Double] = []
        var stalls: [Stall] = []
        var failure: String?
        /// Fulfilled by the probe's thread when it ends; nil before the first start.
        var ended: Promise<Void>?
    }

    private let path: String
    private let interval: Duration
    private let state = Mutex(State())

    /// A probe writing to `path`; nil when its folder does not exist.
    public init?(path: String, interval: Duration = .milliseconds(20)) {
        var isFolder: ObjCBool = false
        let folder = (path as NSString).deletingLastPathComponent
        guard FileManager.default.fileExists(atPath: folder.isEmpty ? "." : folder, isDirectory: &isFolder), isFolder.boolValue
        else { return nil }
        self.path = path
        self.interval = interval
    }

    /// Starts probing on a thread of its own (the flushes block).
    public func start() {
        let ended = Promise<Void>()
        self.state.withLock { $0 = State(running: true, ended: ended) }
        let thread = Thread { self.probe(ended: ended) }
        thread.name = "disk-sync-probe"
        thread.start()
    }

    /// Stops probing and returns what it measured.
    public func stop() async -> Figures {
        let ended = self.state.withLock { state in
            state.running = false
            return state.ended
        }
        try? await ended?.value()
        let (samples, stalls, failure) = self.state.withLock { ($0.samples.sorted(), $0.stalls, $0.failure) }
        func percentile(_ p: Double) -> Double { samples.percentile(p) ?? 0 }
        return Figures(
            samples: samples.count, p50: percentile(0.5), p99: percentile(0.99), p999: percentile(0.999),
            max: samples.last ?? 0, stalls: stalls, failure: failure)
    }

    private func probe(ended: Promise<Void>) {
        defer { ended.succeed(()) }
        func fail(_ step: String) {
            let reason = "\(step) \(self.path): errno \(errno)"
            self.state.withLock { $0.failure = reason }
        }
        let descriptor = open(self.path, O_WRONLY | O_CREAT, 0o644)
        guard descriptor >= 0 else { return fail("open") }
        defer {
            close(descriptor)
            unlink(self.path)
        }
        let block = [UInt8](repeating: 0x70, count: 4096)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let pause = UInt32(
            self.interval.components.seconds * 1_000_000 + self.interval.components.attoseconds / 1_000_000_000_000)
        var slot = 0
        while self.state.withLock({ $0.running }) {
            let wall = Date()
            let started = ContinuousClock.now
            let written = block.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(slot % 256) * 4096) }
            guard written == block.count else { return fail("write") }
            guard fdatasync(descriptor) == 0 else { return fail("fdatasync") }
            let elapsed = ContinuousClock.now - started
            let milliseconds = Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
            self.state.withLock { state in
                state.samples.append(milliseconds)
                if milliseconds > Self.stallThresholdMs, state.stalls.count < 50 {
                    state.stalls.append(Stall(at: formatter.string(from: wall), ms: (milliseconds * 10).rounded() / 10))
                }
            }
            slot += 1
            usleep(pause)
        }
    }
}
