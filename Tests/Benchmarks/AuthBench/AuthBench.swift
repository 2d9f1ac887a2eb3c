import BenchSupport
import Crypto
import Foundation
import Histogram
import MessengerContracts
import MessengerTokens
import Synchronization

/// Measures auth through the real gateway (login and refresh with bcrypt at the configured cost)
/// and the gateway's local token verification. Needs `make up` running; run with
/// `make bench-auth`.
@main
struct AuthBench {
    static func main() async throws {
        let base = ProcessInfo.processInfo.environment["GATEWAY_URL"] ?? "http://127.0.0.1:5000"
        let callers = 8
        say("auth-bench against \(base), \(callers) concurrent callers")

        // 1. Token verification, in process, with the code the gateway runs: in full (the
        // signature checked, as for a token met the first time), and for a token verified before.
        let key = SigningKey(Curve25519.Signing.PrivateKey())
        let audience = TokenAudience()
        let token = try await AccessTokenSigner(key: key, audience: audience, lifetime: .seconds(900)).sign(
            userID: UUID(), session: UUID())
        for (label, capacity) in [("in full", 0), ("remembered", 32_768)] {
            let verifier = AccessTokenVerifier(expected: audience, cacheCapacity: capacity)
            try await verifier.update(JSONWebKeySet(keys: [key.publicJWK]))
            let verifications = capacity == 0 ? 20_000 : 1_000_000
            let verifyStart = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask { for _ in 0..<(verifications / 2) { _ = try await verifier.verify(token) } }
                }
                try await group.waitForAll()
            }
            let verifyRate = Double(verifications) / (ContinuousClock.now - verifyStart).seconds
            say(
                "  token verification, \(label) (2 tasks)".padding(toLength: 44, withPad: " ", startingAt: 0)
                    + "\(Int(verifyRate)) verifications/s")
        }

        // 2. Login and refresh through the gateway. One user per caller: the login throttle
        // counts attempts in flight per login name, so 8 at once for one name are refused (429).
        let prefix = "bench_\(UUID().uuidString.prefix(8).lowercased())"
        let users = (0..<callers).map { "\(prefix)_\($0)" }
        let password = "bench password 1"
        for user in users {
            try await postJSON(
                "\(base)/api/users", ["username": user, "email": "\(user)@bench.example", "password": password]
            ).expect(201)
        }
        let logins = 64
        let login = try await measure(count: logins, callers: callers) { lane in
            try await postJSON("\(base)/api/login", ["login": users[lane], "password": password]).expect(200)
        }
        say(
            "  login (bcrypt)                          \(format(login.rate)) logins/s, p50 \(format(login.p50)) ms, p99 \(format(login.p99)) ms"
        )

        // Every caller refreshes its own family in a chain (each refresh spends the previous token).
        var tokens: [String] = []
        for user in users {
            let body = try await postJSON("\(base)/api/login", ["login": user, "password": password]).expect(200)
            tokens.append(try JSONDecoder().decode(TokenReply.self, from: body).refreshToken)
        }
        let chains = Chains(tokens)
        let refreshes = 800
        let refresh = try await measure(count: refreshes, callers: callers) { lane in
            let body = try await postJSON("\(base)/api/token/refresh", ["refreshToken": chains.take(lane)]).expect(200)
            chains.put(lane, try JSONDecoder().decode(TokenReply.self, from: body).refreshToken)
        }
        say(
            "  refresh (rotation)                      \(format(refresh.rate)) refreshes/s, p50 \(format(refresh.p50)) ms, p99 \(format(refresh.p99)) ms"
        )
    }

    struct TokenReply: Decodable { var refreshToken: String }

    struct Result {
        var rate: Double
        var p50: Double
        var p99: Double
    }

    /// `count` calls spread over `callers` lanes, each lane one call at a time.
    static func measure(count: Int, callers: Int, _ call: @escaping @Sendable (Int) async throws -> Void) async throws -> Result {
        let started = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for lane in 0..<callers {
                group.addTask {
                    var samples: [UInt64] = []
                    var index = lane
                    while index < count {
                        let begin = ContinuousClock.now
                        try await call(lane)
                        let elapsed = ContinuousClock.now - begin
                        samples.append(
                            UInt64(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
                        index += callers
                    }
                    return samples
                }
            }
            var all: [UInt64] = []
            for try await samples in group { all += samples }
            return all
        }
        let elapsed = (ContinuousClock.now - started).seconds
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        for sample in latencies { _ = histogram.record(sample) }
        return Result(
            rate: Double(count) / elapsed, p50: Double(histogram.valueAtPercentile(50)) / 1000,
            p99: Double(histogram.valueAtPercentile(99)) / 1000)
    }

    static func measure(count: Int, callers: Int, _ call: @escaping @Sendable () async throws -> Void) async throws -> Result {
        try await measure(count: count, callers: callers) { (_: Int) in try await call() }
    }
}

/// The newest refresh token of each lane's family.
final class Chains: Sendable {
    private let tokens: Mutex<[String]>
    init(_ tokens: [String]) { self.tokens = Mutex(tokens) }
    func take(_ lane: Int) -> String { self.tokens.withLock { $0[lane] } }
    func put(_ lane: Int, _ token: String) { self.tokens.withLock { $0[lane] = token } }
}

func format(_ value: Double) -> String { String(format: value >= 100 ? "%.0f" : "%.2f", value) }
