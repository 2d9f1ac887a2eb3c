import Foundation
import Glibc

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Small helpers the integration and fault tests share.
public enum TestHelpers {
    /// Polls `condition` until it holds or `timeout` passes; returns whether it held.
    public static func eventually(
        timeout: Duration, every interval: Duration = .milliseconds(100), _ condition: () async throws -> Bool
    ) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return true }
            try? await Task.sleep(for: interval)
        }
        return (try? await condition()) == true
    }

    /// A GET with a plain HTTP client: the status and the body.
    public static func get(_ url: String, timeout: TimeInterval = 10) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = timeout
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    /// Runs a program to completion: its exit status and what it printed on both streams.
    ///
    /// Uses posix_spawn and waitpid directly: Foundation's `Process.waitUntilExit` can miss the
    /// exit of a child that started a daemon (seen with `redis-server --daemonize`), and hang.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String] = [], environment: [String: String]? = nil) throws
        -> (status: Int32, output: String)
    {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let environment = environment ?? ProcessInfo.processInfo.environment
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else { throw TestFailure("cannot run \(executable): errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, output)
    }

    /// Runs `scripts/infra.sh <arguments>` and fails loudly when it fails.
    public static func infra(_ arguments: String...) throws {
        let result = try run("/bin/bash", [TestEnvironment.infraScript] + arguments)
        guard result.status == 0 else {
            throw TestFailure("infra.sh \(arguments.joined(separator: " ")) failed: \(result.output)")
        }
    }
}

/// A plain error with a message, for failures in test plumbing.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
