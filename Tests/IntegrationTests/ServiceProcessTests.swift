import Foundation
import TestSupport
import Testing

/// The five executables as `make up` runs them.
@Suite("Running services", .timeLimit(.minutes(2)))
struct ServiceProcessTests {
    @Test("gateway -> broker -> each service -> broker -> gateway: every service answers its ping")
    func pingThroughEveryService() async throws {
        let (status, body) = try await TestHelpers.get("\(TestEnvironment.gatewayAdminURL)/ping")
        let results = try #require(JSONSerialization.jsonObject(with: body) as? [String: [String: Any]])
        #expect(status == 200, "\(String(decoding: body, as: UTF8.self))")
        #expect(Set(results.keys) == ["auth", "messaging", "media", "delivery"])
        for (service, result) in results {
            #expect(result["ok"] as? Bool == true, "\(service): \(result)")
            #expect((result["instance"] as? String)?.hasPrefix("\(service)-") == true)
        }
    }

    @Test(
        "every service is ready and exports metrics on its admin port",
        arguments: ["socket-gateway", "auth", "messaging", "media", "delivery"])
    func readyAndMetrics(service: String) async throws {
        let base = TestEnvironment.adminURL(service)
        let ready = try await TestHelpers.get("\(base)/readyz")
        #expect(ready.status == 200, "\(String(decoding: ready.body, as: UTF8.self))")
        #expect(try await TestHelpers.get("\(base)/healthz").status == 200)
        let metrics = try await TestHelpers.get("\(base)/metrics")
        #expect(metrics.status == 200)
    }

    @Test("the gateway's public port answers /healthz and /readyz")
    func gatewayPublicHealth() async throws {
        let base = TestEnvironment.gatewayURL
        #expect(try await TestHelpers.get("\(base)/healthz").status == 200)
        #expect(try await TestHelpers.get("\(base)/readyz").status == 200)
    }

    @Test("a missing required variable stops a service at start with one line naming it", arguments: ["auth", "socket-gateway"])
    func failFastOnConfiguration(service: String) throws {
        let result = try TestHelpers.run(
            "\(TestEnvironment.binaryDirectory)/\(service)",
            environment: ["PATH": "/usr/bin:/bin", "ENV_FILE": "/dev/null"])
        #expect(result.status == 1)
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == 1, "\(result.output)")
        #expect(result.output.contains("RABBITMQ_URI is required but not set"))
    }

    @Test("an ENV_FILE that names no file stops a service at start; an empty one means no file")
    func missingEnvironmentFile() throws {
        var environment = TestEnvironment.serviceVariables
        environment["ENV_FILE"] = "/nonexistent/messenger.env"
        let missing = try TestHelpers.run("\(TestEnvironment.binaryDirectory)/auth", environment: environment)
        #expect(missing.status == 1)
        #expect(missing.output.contains("configuration error: ENV_FILE"), "\(missing.output)")
        // With no file, a missing required variable is what stops it, as with /dev/null.
        let empty = try TestHelpers.run(
            "\(TestEnvironment.binaryDirectory)/auth", environment: ["PATH": "/usr/bin:/bin", "ENV_FILE": ""])
        #expect(empty.status == 1)
        #expect(empty.output.contains("RABBITMQ_URI is required but not set"), "\(empty.output)")
    }

    @Test("a malformed value stops a service at start and names the variable")
    func failFastOnMalformedValue() throws {
        var environment = TestEnvironment.serviceVariables
        environment["AUTH_ADMIN_PORT"] = "not-a-port"
        let result = try TestHelpers.run("\(TestEnvironment.binaryDirectory)/auth", environment: environment)
        #expect(result.status == 1)
        #expect(result.output.contains("AUTH_ADMIN_PORT must be an integer"))
    }

    @Test(
        "a value found bad only by trying it stops a service at start and names the variable",
        arguments: [
            ("media", "MEDIA_DIR", "/proc/messenger-media"),
            ("media", "CLOUDINARY_UPLOAD_PREFIX", "not a url"),
            ("auth", "JWT_PRIVATE_KEY", "not a key"),
            ("messaging", "MESSAGING_BATCH_WRITERS", "0"),
        ])
    func failFastOnUnusableValue(service: String, variable: String, value: String) throws {
        var environment = TestEnvironment.serviceVariables
        environment[variable] = value
        environment.removeValue(forKey: "JWT_PRIVATE_KEY_FILE")
        for key in environment.keys where key.hasPrefix("CLOUDINARY_") && key != variable { environment.removeValue(forKey: key) }
        if variable == "CLOUDINARY_UPLOAD_PREFIX" { environment["CLOUDINARY_URL"] = "cloudinary://key:secret@demo" }
        let result = try TestHelpers.run("\(TestEnvironment.binaryDirectory)/\(service)", environment: environment)
        #expect(result.status == 1)
        #expect(result.output.contains("configuration error: \(variable)"), "\(result.output)")
        #expect(result.output.split(separator: "\n").count == 1, "read before any connection starts: \(result.output)")
    }

    @Test(
        "SIGTERM during start-up, every server unreachable, ends a service at once with status 0",
        arguments: [
            ("auth", "AUTH", 19191), ("messaging", "MESSAGING", 19192), ("media", "MEDIA", 19193),
            ("delivery", "DELIVERY", 19194), ("socket-gateway", "GATEWAY", 19195),
        ])
    func gracefulStopDuringStartUp(service: String, prefix: String, adminPort: Int) async throws {
        var environment = TestEnvironment.serviceVariables
        environment["RABBITMQ_URI"] = "amqp://guest:guest@127.0.0.1:1/%2f"
        environment["DATABASE_URL"] = "postgres://postgres@127.0.0.1:2/messenger"
        environment["REDIS_PORT"] = "3"
        environment["\(prefix)_ADMIN_PORT"] = String(adminPort)
        environment["PORT"] = "15199"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(TestEnvironment.binaryDirectory)/\(service)")
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Task.sleep(for: .seconds(2))
        process.terminate()  // SIGTERM, while start-up still waits for the servers
        // Start-up retries for a minute: an exit well before it is the shutdown's.
        let exited = await TestHelpers.eventually(timeout: .seconds(20)) { !process.isRunning }
        #expect(exited)
        if exited {
            #expect(process.terminationStatus == 0 && process.terminationReason == .exit)
        } else {
            kill(process.processIdentifier, SIGKILL)
        }
    }

    @Test("SIGTERM: a service stops consuming, finishes, and exits 0")
    func gracefulStop() async throws {
        var environment = TestEnvironment.serviceVariables
        environment["MEDIA_ADMIN_PORT"] = "19103"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(TestEnvironment.binaryDirectory)/media")
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let ready = await TestHelpers.eventually(timeout: .seconds(30), every: .milliseconds(200)) {
            try await TestHelpers.get("http://127.0.0.1:19103/readyz", timeout: 2).status == 200
        }
        #expect(ready)
        process.terminate()  // SIGTERM
        let exited = await TestHelpers.eventually(timeout: .seconds(20)) { !process.isRunning }
        #expect(exited)
        if exited {
            #expect(process.terminationStatus == 0)
            #expect(process.terminationReason == .exit)
        } else {
            kill(process.processIdentifier, SIGKILL)
        }
        let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(log.contains("stopped"), "\(log)")
    }
}
