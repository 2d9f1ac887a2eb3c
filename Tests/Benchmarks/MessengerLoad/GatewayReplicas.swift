import BenchSupport
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Extra socket-gateway processes beside the one `make up` runs, for a scenario that needs more
/// sockets than one process may open here (the open-file limit). They run the gateway binary
/// that sits beside this tool's, with this tool's environment (`.run/local.env`, loaded by
/// `scripts/bench.sh`) on ports of their own, and stop when the scenario is done. Any gateway
/// serves any user: pushes reach a socket on any replica through Redis.
struct GatewayReplicas {
    /// One replica: its base URL and its process.
    struct Replica {
        var base: String
        var process: Process
        var pid: Int32 { self.process.processIdentifier }
    }

    private(set) var replicas: [Replica] = []

    /// Starts `count` replicas on the ports after `base`'s (admin ports after `adminPort` + 10)
    /// and waits until each is ready.
    static func start(count: Int, base: String, adminPort: Int) async throws -> GatewayReplicas {
        var started = GatewayReplicas()
        guard count > 0 else { return started }
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let gateway = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("socket-gateway")
        guard var components = URLComponents(string: base), let port = components.port else {
            throw ReplicaError(message: "the gateway URL \(base) has no port")
        }
        do {
            for index in 1...count {
                let replicaPort = port + index
                let replicaAdmin = adminPort + 10 + index
                components.port = replicaPort
                let process = Process()
                process.executableURL = gateway
                process.environment = ProcessInfo.processInfo.environment.merging([
                    "PORT": String(replicaPort), "GATEWAY_ADMIN_PORT": String(replicaAdmin),
                ]) { $1 }
                let log = ".run/logs/socket-gateway-\(replicaPort).log"
                _ = FileManager.default.createFile(atPath: log, contents: nil)
                process.standardOutput = FileHandle(forWritingAtPath: log)
                process.standardError = process.standardOutput
                try process.run()
                started.replicas.append(Replica(base: components.string ?? base, process: process))
                try await Self.waitUntilReady(adminPort: replicaAdmin, process: process)
            }
        } catch {
            await started.stop()
            throw error
        }
        return started
    }

    /// SIGTERM to each replica, then waits (up to 20 s each) for it to exit.
    func stop() async {
        for replica in self.replicas where replica.process.isRunning { replica.process.terminate() }
        for replica in self.replicas {
            let deadline = ContinuousClock.now + .seconds(20)
            while replica.process.isRunning, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(100))
            }
            if replica.process.isRunning { kill(replica.pid, SIGKILL) }
        }
    }

    private static func waitUntilReady(adminPort: Int, process: Process) async throws {
        let url = URL(string: "http://127.0.0.1:\(adminPort)/readyz")!
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw ReplicaError(message: "a gateway replica exited at start (admin port \(adminPort))")
            }
            if let (_, response) = try? await URLSession.shared.data(from: url),
                (response as? HTTPURLResponse)?.statusCode == 200
            {
                return
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ReplicaError(message: "a gateway replica was not ready within 60 s (admin port \(adminPort))")
    }
}

/// A replica that could not be started.
struct ReplicaError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
