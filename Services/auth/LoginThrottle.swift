import Foundation
import Logging
import MessengerContracts
import PostgresNIO

/// Counts failed logins per login name and per client address in fixed windows, in auth's
/// schema so that every replica sees the same counts.
struct LoginThrottle: Sendable {
    struct Limits: Sendable {
        var perLogin: Int
        var perAddress: Int
        var window: Duration
    }

    let client: PostgresClient
    let limits: Limits
    let logger: Logger

    private var windowSeconds: Double { Double(self.limits.window.components.seconds) }

    static func keys(login: String, address: String?) -> (login: String, address: String?) {
        ("login:\(login.lowercased())", address.map { "address:\($0)" })
    }

    /// Throws `rate_limited` (with the seconds left in the window) when a counter is at its limit.
    func check(login: String, address: String?) async throws {
        let keys = Self.keys(login: login, address: address)
        let candidates = [keys.login, keys.address].compactMap { $0 }
        let rows = try await self.client.query(
            """
            SELECT key, failures, extract(epoch FROM (window_started_at + make_interval(secs => \(self.windowSeconds)) - now()))::float8
            FROM login_failures WHERE key = ANY(\(candidates))
            """, logger: self.logger)
        for try await (key, failures, secondsLeft) in rows.decode((String, Int, Double).self) {
            let limit = key == keys.login ? self.limits.perLogin : self.limits.perAddress
            if failures >= limit, secondsLeft > 0 {
                throw ServiceError.rateLimited(
                    "too many failed logins; try again later", retryAfter: Int(secondsLeft.rounded(.up)))
            }
        }
    }

    /// Counts one failure for the login and the address; a window that has ended starts anew.
    func recordFailure(login: String, address: String?) async throws {
        let keys = Self.keys(login: login, address: address)
        for key in [keys.login, keys.address].compactMap({ $0 }) {
            try await self.client.query(
                """
                INSERT INTO login_failures (key, failures, window_started_at) VALUES (\(key), 1, now())
                ON CONFLICT (key) DO UPDATE SET
                    failures = CASE WHEN login_failures.window_started_at + make_interval(secs => \(self.windowSeconds)) <= now()
                        THEN 1 ELSE login_failures.failures + 1 END,
                    window_started_at = CASE WHEN login_failures.window_started_at + make_interval(secs => \(self.windowSeconds)) <= now()
                        THEN now() ELSE login_failures.window_started_at END
                """, logger: self.logger)
        }
    }

    /// A successful login clears the name's counter.
    func recordSuccess(login: String) async throws {
        let key = Self.keys(login: login, address: nil).login
        try await self.client.query("DELETE FROM login_failures WHERE key = \(key)", logger: self.logger)
    }
}
