import BenchSupport
import Foundation
import Synchronization

/// Opens authenticated Socket.IO WebSocket clients of one user that then stay idle (answering
/// pings), spread over one or more gateway processes, and measures each gateway's resident
/// memory per connection; then closes them and measures what the gateways give back.
///
/// The sockets are opened by worker processes (this executable with `--idle-worker`), one per
/// gateway: a process may hold only as many sockets as its open-file limit allows, and the
/// limit here (20,000) is below the scenario's 50,000.
enum IdleSockets {
    /// A gateway process and the sockets it is to hold.
    struct Share {
        var base: String
        var pid: Int32
        var count: Int
    }

    /// One gateway's figures.
    struct GatewayOutcome {
        var connected: Int
        var before: Int
        var after: Int
        var afterClose: Int
    }

    static func run(shares: [Share], token: String) async throws -> [GatewayOutcome] {
        let before = shares.map { ProcessStats.residentBytes($0.pid) }
        // Each worker connects from a loopback address of its own: one address has only about
        // 28,000 ephemeral ports for all its connections, whatever their destination.
        let workers = try shares.enumerated().map {
            try IdleWorker(share: $0.element, token: token, source: "127.0.0.\(10 + $0.offset)")
        }
        defer { for worker in workers { worker.stop() } }
        let count = shares.reduce(0) { $0 + $1.count }
        let deadline = ContinuousClock.now + .seconds(180)
        var reported = 0
        while ContinuousClock.now < deadline {
            let done = workers.reduce(0) { $0 + $1.tally.connected + $1.tally.failed }
            if done >= reported + 5_000 || (done == count && reported < count) {
                reported = done
                let connected = workers.reduce(0) { $0 + $1.tally.connected }
                say("    idle: \(done)/\(count) done, \(connected) connected")
            }
            if done >= count || workers.allSatisfy({ !$0.isRunning }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        // Let the gateways settle (handshakes done, buffers released).
        try await Task.sleep(for: .seconds(3))
        let after = shares.map { ProcessStats.residentBytes($0.pid) }
        let connected = workers.map(\.tally.connected)
        for worker in workers { worker.stop() }
        try await Task.sleep(for: .seconds(5))
        return shares.indices.map {
            GatewayOutcome(
                connected: connected[$0], before: before[$0], after: after[$0],
                afterClose: ProcessStats.residentBytes(shares[$0].pid))
        }
    }

    /// The worker's side (`--idle-worker=URL --idle=N`, the token in `MESSENGER_LOAD_TOKEN`,
    /// the local address to connect from in `MESSENGER_LOAD_SOURCE`): opens `count` sockets to
    /// `url`, prints `connected C failed F` four times a second, and holds them until the
    /// process is terminated.
    static func work(url: String, count: Int) async throws -> Never {
        let environment = ProcessInfo.processInfo.environment
        let connect = #"40{"token":"\#(environment["MESSENGER_LOAD_TOKEN"] ?? "")"}"#
        let source = environment["MESSENGER_LOAD_SOURCE"]
        let socketURL = url.replacingOccurrences(of: "http", with: "ws") + "/socket.io/?EIO=4&transport=websocket"
        guard let endpoint = PlainWebSocket.Endpoint(url: socketURL) else { throw PlainWebSocket.InvalidURL(url: url) }
        let tally = WorkerTally()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                while true {
                    say("connected \(tally.connected.load(ordering: .relaxed)) failed \(tally.failed.load(ordering: .relaxed))")
                    try await Task.sleep(for: .milliseconds(250))
                }
            }
            // At most `window` handshakes at a time: more only overflow the gateway's accept
            // queue, and a dropped SYN costs its client a second or more.
            let window = 128
            for index in 0..<count {
                if index >= window { try await group.next() }
                group.addTask {
                    do {
                        // Idle: answer pings, count the CONNECT's answer, ignore the rest.
                        _ = try await PlainWebSocket.connect(
                            to: endpoint, from: source,
                            onText: { text in
                                if text == "2" { return "3" }
                                if text.hasPrefix("0{") { return connect }
                                if text.hasPrefix("40{") { tally.connected.add(1, ordering: .relaxed) }
                                return nil
                            }, onClose: {})
                    } catch {
                        if tally.failed.add(1, ordering: .relaxed).newValue <= 3 {
                            FileHandle.standardError.write(Data("idle worker: a socket to \(url) failed: \(error)\n".utf8))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}

/// A worker process holding one gateway's share of the idle sockets, and the counts it last
/// printed.
private final class IdleWorker: Sendable {
    struct Tally {
        var connected = 0
        var failed = 0
    }

    private let process: Process
    private let state = Mutex<(tally: Tally, pending: String)>((Tally(), ""))

    var tally: Tally { self.state.withLock { $0.tally } }
    var isRunning: Bool { self.process.isRunning }

    init(share: IdleSockets.Share, token: String, source: String) throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--idle-worker=\(share.base)", "--idle=\(share.count)"]
        process.environment = ProcessInfo.processInfo.environment.merging([
            "MESSENGER_LOAD_TOKEN": token, "MESSENGER_LOAD_SOURCE": source,
        ]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        self.process = process
        output.fileHandleForReading.readabilityHandler = { [weak self] handle in self?.read(handle.availableData) }
        try process.run()
    }

    /// Takes the counts from the worker's complete lines.
    private func read(_ data: Data) {
        self.state.withLock { state in
            state.pending += String(decoding: data, as: UTF8.self)
            while let newline = state.pending.firstIndex(of: "\n") {
                let words = state.pending[..<newline].split(separator: " ")
                state.pending = String(state.pending[state.pending.index(after: newline)...])
                if words.count == 4, let connected = Int(words[1]), let failed = Int(words[3]) {
                    state.tally = Tally(connected: connected, failed: failed)
                }
            }
        }
    }

    /// Terminates the worker: the kernel closes its sockets.
    func stop() {
        guard self.process.isRunning else { return }
        self.process.terminate()
        self.process.waitUntilExit()
    }
}

/// A worker's counts, shared by its clients' tasks.
private final class WorkerTally: Sendable {
    let connected = Atomic(0)
    let failed = Atomic(0)
}
