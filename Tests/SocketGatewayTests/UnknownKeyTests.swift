import Crypto
import Foundation
import MessengerAMQP
import MessengerContracts
import MessengerTokens
import TestSupport
import Testing

@testable import SocketGateway

/// A token that names a key the gateway does not know, while auth cannot be asked for its keys:
/// the token may well be valid, and clients take `unauthorized` for a logout, so the answer is
/// `unavailable`. Until the fifty-sixth session it was 401.
@Suite("A token naming an unknown key while auth is away", .timeLimit(.minutes(1)))
struct UnknownKeyTests {
    @Test("is unavailable, and again right after; garbage is still invalid")
    func unavailableWhileAuthIsAway() async throws {
        // A broker nobody listens for: every call to auth ends at its timeout.
        var configuration = try TestEnvironment.amqpConfiguration(name: "test-unknown-key")
        configuration.port = 1
        let connection = AMQPConnection(configuration: configuration, logger: TestEnvironment.logger)
        let audience = TokenAudience(issuer: "messenger-auth", audience: "messenger")
        let check = AccessTokenCheck(
            audience: audience,
            rpc: RPCClient(
                connection: connection, instanceName: "test", timeout: .milliseconds(300),
                logger: TestEnvironment.logger),
            logger: TestEnvironment.logger)
        let key = SigningKey(Curve25519.Signing.PrivateKey())
        let token = try await AccessTokenSigner(key: key, audience: audience, lifetime: .seconds(900))
            .sign(userID: UUID(), session: UUID())

        // The same answer right after, whether within the fetch interval (the last fetch failed,
        // so none is made: `KeyFetchThrottleTests`) or past it on a slow machine (another fails).
        for _ in 0..<2 {
            let error = await #expect(throws: ServiceError.self) { try await check.verify(token) }
            #expect(error?.code == .unavailable)
        }
        #expect(try await check.verify("not.a.token") == nil)
        await connection.close()
    }
}
