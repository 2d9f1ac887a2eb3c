import Foundation
import MessengerContracts
import TestSupport
import Testing

@testable import AuthService

/// The accounts one client address may register in a window (``RegistrationThrottle``), against
/// the real PostgreSQL. Each test uses addresses of its own.
@Suite("Registrations per client address", .timeLimit(.minutes(1)))
struct RegistrationThrottleTests {
    /// An IPv6 address in a /64 of its own, and another address in the same /64.
    static func network() -> (String, sameNetwork: String) {
        let hex = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let prefix = "2001:db8:\(hex.prefix(4)):\(hex.dropFirst(4).prefix(4))"
        return ("\(prefix)::1", "\(prefix):ffff::2")
    }

    static func request(_ name: String, from address: String) -> RegisterRequest {
        RegisterRequest(
            username: name, email: "\(name)@example.com", password: CallerGaveUpTests.password, clientAddress: address)
    }

    @Test("past its limit an address's network is refused with rate_limited and a retry time; others are not")
    func limitPerAddress() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5, registrationsPerAddress: 2) { authenticator, _ in
            let (address, neighbour) = Self.network()
            let first = TestEnvironment.uniqueName("reg")
            _ = try await authenticator.register(Self.request(first, from: address), before: nil)
            _ = try await authenticator.register(Self.request(TestEnvironment.uniqueName("reg"), from: address), before: nil)
            for from in [address, neighbour] {
                await #expect {
                    _ = try await authenticator.register(Self.request(TestEnvironment.uniqueName("reg"), from: from), before: nil)
                } throws: { error in
                    let error = error as? ServiceError
                    return error?.code == .rateLimited && (1...600).contains(error?.retryAfter ?? 0)
                }
            }
            // A taken name is refused for that before anything is counted.
            await #expect {
                _ = try await authenticator.register(Self.request(first, from: address), before: nil)
            } throws: { error in
                (error as? ServiceError)?.code == .conflict
            }
            _ = try await authenticator.register(
                Self.request(TestEnvironment.uniqueName("reg"), from: Self.network().0), before: nil)
        }
    }

    @Test("a registration that fails after taking its place gives it back")
    func failedRegistrationGivesItsPlaceBack() async throws {
        try await CallerGaveUpTests().withAuthenticator(maxFailures: 5, registrationsPerAddress: 2) { authenticator, _ in
            let (address, _) = Self.network()
            for _ in 0..<3 {
                await #expect {
                    // The caller gave up before the hash: no account.
                    _ = try await authenticator.register(
                        Self.request(TestEnvironment.uniqueName("reg"), from: address), before: .now - .seconds(1))
                } throws: { error in
                    (error as? ServiceError)?.code == .unavailable
                }
            }
            for _ in 0..<2 {
                _ = try await authenticator.register(Self.request(TestEnvironment.uniqueName("reg"), from: address), before: nil)
            }
        }
    }
}
