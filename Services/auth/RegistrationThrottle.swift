import Logging
import MessengerContracts
import MessengerPostgres
import PostgresNIO

/// Counts the accounts registered from each client address in fixed windows, in auth's schema
/// so that every replica sees the same counts. Each new account costs a bcrypt hash on the
/// threads that logins share, and a row: one address registering without end would spend both.
///
/// A registration takes its place after its input was checked and its names found free (those
/// refusals cost no hash and do not count), and before it hashes
/// (``reserve(address:)``); one that fails after that gives its place back
/// (``giveBack(address:)``). Addresses count by their network, as for the login throttle
/// (``LoginThrottle/network(of:)``). No address (the gateway saw none) or a limit of 0: no limit.
struct RegistrationThrottle: Sendable {
    struct Limits: Sendable {
        /// Accounts per address and window; 0 for no limit.
        var perAddress: Int
        var window: Duration
    }

    let client: Database
    let limits: Limits
    let logger: Logger

    /// Counts a registration for `address`; throws `rate_limited` (with the seconds left in the
    /// window) past the limit, after giving the place back.
    func reserve(address: String?) async throws {
        guard let key = self.key(address) else { return }
        let window = Double(self.limits.window.components.seconds)
        let rows = try await self.client.write(
            """
            INSERT INTO registration_counts (key, registrations, window_started_at) VALUES (\(key), 1, now())
            ON CONFLICT (key) DO UPDATE SET
                registrations = CASE WHEN registration_counts.window_started_at + make_interval(secs => \(window)) <= now()
                    THEN 1 ELSE registration_counts.registrations + 1 END,
                window_started_at = CASE WHEN registration_counts.window_started_at + make_interval(secs => \(window)) <= now()
                    THEN now() ELSE registration_counts.window_started_at END
            RETURNING registrations, extract(epoch FROM (window_started_at + make_interval(secs => \(window)) - now()))::float8
            """, logger: self.logger)
        var over: Double?
        for try await (registrations, secondsLeft) in rows.decode((Int, Double).self)
        where registrations > self.limits.perAddress {
            over = secondsLeft
        }
        guard let over else { return }
        try await self.giveBack(key: key)
        throw ServiceError.rateLimited(
            "too many accounts registered from this address; try again later", retryAfter: max(1, Int(over.rounded(.up))))
    }

    /// A registration that failed after ``reserve(address:)`` created nothing: its place goes back.
    func giveBack(address: String?) async throws {
        guard let key = self.key(address) else { return }
        try await self.giveBack(key: key)
    }

    private func giveBack(key: String) async throws {
        try await self.client.write(
            "UPDATE registration_counts SET registrations = greatest(registrations - 1, 0) WHERE key = \(key)",
            logger: self.logger)
    }

    private func key(_ address: String?) -> String? {
        guard self.limits.perAddress > 0, let address else { return nil }
        return LoginThrottle.keys(login: "", address: address).address
    }
}
