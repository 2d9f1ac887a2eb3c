import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import SocketIOProtocol
import SocketIOServer

/// Our Engine.IO / Socket.IO engine set up exactly like the reference servers of the official
/// test suites (socketio/engine.io-protocol and socketio/socket.io-protocol, "Test suite"):
/// `--mode engineio` echoes every message on `/engine.io/`; `--mode socketio` serves `/` and
/// `/custom` on `/socket.io/`, emits `auth` with the CONNECT payload, answers `message` with
/// `message-back` and acks `message-with-ack`. Ping interval 300 ms, timeout 200 ms, maxPayload
/// 1e6, connect timeout 1 s, CORS `*`. `scripts/conformance.sh` runs the suites against it.
@main
struct SocketIOConformance {
    static func main() async throws {
        var mode = "socketio"
        var port = 3000
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--mode": mode = arguments.next() ?? mode
            case "--port": port = arguments.next().flatMap(Int.init) ?? port
            default: break
            }
        }
        var logger = Logger(label: "socketio-conformance")
        logger.logLevel = .warning

        var configuration = EngineConfiguration()
        configuration.pingInterval = .milliseconds(300)
        configuration.pingTimeout = .milliseconds(200)
        configuration.maxPayload = 1_000_000
        configuration.connectTimeout = .seconds(1)
        configuration.corsOrigin = "*"

        let router = Router()
        let engine: EngineServer
        let path: String
        if mode == "engineio" {
            engine = EngineServer(configuration: configuration, logger: logger) { _, _ in Echo() }
            path = "engine.io"
        } else {
            let server = SocketIOServer(
                configuration: configuration, logger: logger, namespaces: ["/", "/custom"],
                authenticate: { _, _ in .success(SocketPrincipal(userID: "anonymous")) }, unknownEvent: { _, _ in [] })
            server.onConnect { socket, auth in
                // The suite's waitFor() attaches its next listener only after the previous message
                // resolved its promise; two frames read in one chunk would lose the second. A
                // moment's pause keeps the CONNECT reply and this event in separate reads.
                Task {
                    try? await Task.sleep(for: .milliseconds(5))
                    await socket.emit("auth", [auth ?? .object([:])])
                }
            }
            server.on("message") { socket, arguments in
                await socket.emit("message-back", arguments)
                return []
            }
            server.on("message-with-ack") { _, arguments in arguments }
            engine = server.engine
            path = "socket.io"
        }
        engine.addPollingRoutes(to: router, path: RouterPath(path))
        let app = Application(
            router: router,
            server: engine.httpServer(webSocketPath: "/\(path)/"),
            configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await app.runService()
    }
}

/// Engine.IO mode: every message goes straight back.
struct Echo: EngineSessionDelegate {
    func engineSession(_ session: isolated EngineSession, didReceive message: EngineMessage) {
        session.send([message])
    }

    func engineSessionDidClose(_ session: isolated EngineSession, reason: String) {}
}
