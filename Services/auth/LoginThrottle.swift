import Crypto
import Foundation
import Logging
import MessengerContracts
import MessengerPostgres
import PostgresNIO

#if canImport(Glibc)
import Glibc
#endif

/// Counts failed logins per login name and per client address in fixed windows, in auth's
/// schema so that every replica sees the same counts; and password checks, failed or not, the
/// same way, under larger limits.
///
/// An attempt takes its place in every counter before its password is checked
/// (``reserveAttempt(login:address:)``), in one statement, so that attempts arriving together
/// cannot all pass a check made before any of them failed. An attempt refused for being over a
/// limit gives its places back; a successful one clears the login's failures and gives the
/// address's failure place back, and keeps its checks; a failed one keeps all; one whose
/// password was never checked (its caller stopped waiting first) gives all back.
///
/// An account's failed logins over their limit refuse its logins from every address but those
/// it logged in from in the last ``knownAddressLifetime`` (``reserveAttempt(login:address:)``):
/// until the fifty-sixth session they refused all, so anyone who knew a username could keep its
/// owner from logging in with five wrong passwords every five minutes (a review). A known
/// address still has its own failure limit, and the checks' limits hold for all.
///
/// The checks' counters bound what a client that knows a password costs: each check is a
/// bcrypt (about 200 ms of a core at cost 12), and until the fifty-third session a login with
/// the right password, or a password change, counted nowhere: one account looping on either
/// kept both of auth's cores busy and other users' logins were refused (a review).
struct LoginThrottle: Sendable {
    struct Limits: Sendable {
        var perLogin: Int
        var perAddress: Int
        /// Password checks per login and window, failed or not; 0: no limit.
        var checksPerLogin: Int
        /// Password checks per client address and window, failed or not; 0: no limit.
        var checksPerAddress: Int
        var window: Duration
    }

    let client: Database
    let limits: Limits
    let logger: Logger

    private var windowSeconds: Double { Double(self.limits.window.components.seconds) }

    /// The counters' keys. The login and the address are hashed: a key has a fixed length
    /// whatever was typed in the login field, and the table holds no login names. The address
    /// counts as its ``network(of:)``.
    static func keys(login: String, address: String?) -> (login: String, address: String?) {
        ("login:" + Self.digest(login.lowercased()), address.map { "address:" + Self.digest(Self.network(of: $0)) })
    }

    /// What one client's addresses have in common: an IPv4 address itself (an IPv4-mapped IPv6
    /// one too), an IPv6 address's /64, the least a single host is given. Until the
    /// forty-third session every IPv6 address counted on its own, and a client holding a /64
    /// had 2^64 counters to spread a password spraying over (a review). Text that is not an
    /// address is itself.
    static func network(of address: String) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard address.contains(":"), inet_pton(AF_INET6, address, &bytes) == 1 else { return address }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return bytes[12...].map(String.init).joined(separator: ".")
        }
        return bytes[0..<8].map { String(format: "%02x", $0) }.joined() + "::/64"
    }

    private static func digest(_ text: String) -> String {
        Data(SHA256.hash(data: Array(text.utf8))).base64EncodedString()
    }

    /// A counter's limit, by its key: failures or checks, of a login or an address; nil for a
    /// counter that is not kept.
    private func limit(of key: String, keys: (login: String, address: String?)) -> Int? {
        let limit: Int
        switch key {
        case keys.login: limit = self.limits.perLogin
        case keys.address: limit = self.limits.perAddress
        case Self.checks(keys.login): limit = self.limits.checksPerLogin
        default: limit = self.limits.checksPerAddress
        }
        return limit > 0 ? limit : nil
    }

    /// The key of the checks' counter next to a failures' counter.
    private static func checks(_ key: String) -> String { "checks:" + key }

    /// Every counter an attempt takes a place in.
    private func counters(_ keys: (login: String, address: String?)) -> [String] {
        var counters = [keys.login]
        if self.limits.checksPerLogin > 0 { counters.append(Self.checks(keys.login)) }
        if let address = keys.address {
            counters.append(address)
            if self.limits.checksPerAddress > 0 { counters.append(Self.checks(address)) }
        }
        // Sorted, so that concurrent attempts lock the rows in the same order.
        return counters.sorted()
    }

    /// Counts the attempt for the login and the address; throws `rate_limited` (with the seconds
    /// left in the window) when a counter is past its limit, after giving the places back.
    func reserveAttempt(login: String, address: String?) async throws {
        let keys = Self.keys(login: login, address: address)
        let candidates = self.counters(keys)
        let window = self.windowSeconds
        let rows = try await self.client.write(
            """
            INSERT INTO login_failures (key, failures, window_started_at)
            SELECT key, 1, now() FROM unnest(\(candidates)::text[]) AS key ORDER BY key
            ON CONFLICT (key) DO UPDATE SET
                failures = CASE WHEN login_failures.window_started_at + make_interval(secs => \(window)) <= now()
                    THEN 1 ELSE login_failures.failures + 1 END,
                window_started_at = CASE WHEN login_failures.window_started_at + make_interval(secs => \(window)) <= now()
                    THEN now() ELSE login_failures.window_started_at END
            RETURNING key, failures, extract(epoch FROM (window_started_at + make_interval(secs => \(window)) - now()))::float8
            """, logger: self.logger)
        var secondsLeft: Double?
        var over: Set<String> = []
        for try await (key, count, left) in rows.decode((String, Int, Double).self) {
            guard let limit = self.limit(of: key, keys: keys), count > limit else { continue }
            secondsLeft = max(secondsLeft ?? 0, left)
            over.insert(key)
        }
        guard let secondsLeft else { return }
        // Only the account's failures are over: its own known addresses may still try.
        if over == [keys.login], let address = keys.address, try await self.isKnown(address, of: keys.login) { return }
        let failuresOver = over.contains { !$0.hasPrefix("checks:") }
        try await self.giveBack(keys: candidates)
        throw ServiceError.rateLimited(
            failuresOver ? "too many failed logins; try again later" : "too many logins; try again later",
            retryAfter: max(1, Int(secondsLeft.rounded(.up))))
    }

    /// A successful login clears the name's counter, gives the address its place back, and
    /// makes the address known to the login.
    func recordSuccess(login: String, address: String?) async throws {
        let keys = Self.keys(login: login, address: address)
        try await self.client.write("DELETE FROM login_failures WHERE key = \(keys.login)", logger: self.logger)
        guard let address = keys.address else { return }
        try await self.giveBack(keys: [address])
        try await self.client.write(
            """
            INSERT INTO known_login_addresses (login_key, address_key, seen_at) VALUES (\(keys.login), \(address), now())
            ON CONFLICT (login_key, address_key) DO UPDATE SET seen_at = now()
            """, logger: self.logger)
    }

    /// How long an address a login succeeded from stays known to it.
    static let knownAddressLifetime: Duration = .seconds(30 * 86_400)

    /// Whether a login succeeded from `address` (its key) within ``knownAddressLifetime``.
    private func isKnown(_ address: String, of login: String) async throws -> Bool {
        let rows = try await self.client.query(
            """
            SELECT 1 FROM known_login_addresses
            WHERE login_key = \(login) AND address_key = \(address)
              AND seen_at > now() - make_interval(secs => \(Double(Self.knownAddressLifetime.components.seconds)))
            """, logger: self.logger)
        for try await _ in rows { return true }
        return false
    }

    /// An attempt whose password was not checked gives all its places back: it guessed nothing,
    /// and cost no bcrypt.
    func giveBackAttempt(login: String, address: String?) async throws {
        try await self.giveBack(keys: self.counters(Self.keys(login: login, address: address)))
    }

    private func giveBack(keys: [String]) async throws {
        try await self.client.write(
            "UPDATE login_failures SET failures = greatest(failures - 1, 0) WHERE key = ANY(\(keys))", logger: self.logger)
    }
}
