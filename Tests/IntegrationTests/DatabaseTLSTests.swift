import Foundation
import MessengerPostgres
import PostgresNIO
import TestSupport
import Testing

/// What a client made from `DATABASE_URL` sends first: an SSLRequest for every `sslmode` that
/// asks for TLS, a plain StartupMessage otherwise (``DatabaseConfiguration/TLSMode``). Until the
/// thirty-eighth session `verify-full` connected in plain text.
@Suite("DATABASE_URL sslmode", .timeLimit(.minutes(1)))
struct DatabaseTLSTests {
    /// PostgreSQL's SSLRequest: length 8, then the code 80877103.
    static let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]

    func firstMessage(sslmode: String?) async throws -> [UInt8] {
        let listener = try SilentListener()
        defer { listener.close() }
        let query = sslmode.map { "?sslmode=\($0)" } ?? ""
        let configuration = try DatabaseConfiguration(
            url: "postgres://app:secret@127.0.0.1:\(listener.port)/chat\(query)", schema: "public")
        let client = configuration.makeClient(logger: TestEnvironment.logger)
        return await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            group.addTask { _ = try? await client.query("SELECT 1") }
            defer { group.cancelAll() }
            return await listener.firstBytes(8)
        }
    }

    @Test(
        "require, verify-ca, verify-full and prefer start with an SSLRequest",
        arguments: ["require", "verify-ca", "verify-full", "prefer"])
    func asksForTLS(sslmode: String) async throws {
        #expect(try await self.firstMessage(sslmode: sslmode) == Self.sslRequest)
    }

    @Test("disable, or no sslmode, starts in plain text", arguments: ["disable", nil])
    func plain(sslmode: String?) async throws {
        let first = try await self.firstMessage(sslmode: sslmode)
        #expect(first.count == 8 && first != Self.sslRequest && Array(first[4..<8]) == [0, 3, 0, 0])
    }

    @Test("an unknown sslmode, a port past 65535 and an unreadable sslrootcert are configuration errors")
    func refused() {
        for url in [
            "postgres://db/chat?sslmode=REQUIRE", "postgres://db/chat?sslmode=bogus", "postgres://db:70788/chat",
            "postgres://db/chat?sslmode=verify-full&sslrootcert=/nonexistent/root.pem",
        ] {
            #expect(throws: DatabaseError.self, "\(url)") { try DatabaseConfiguration(url: url, schema: "auth") }
        }
    }
}
