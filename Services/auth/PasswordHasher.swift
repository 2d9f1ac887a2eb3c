import HummingbirdBcrypt
import NIOPosix

/// bcrypt on NIO's blocking thread pool: a hash takes about a quarter of a second at cost 12,
/// which must never run on an event loop or tie up the cooperative pool.
struct PasswordHasher: Sendable {
    let cost: UInt8
    /// A hash of a random password at the same cost: verifying against it makes a login for an
    /// unknown user take as long as one with a wrong password.
    let decoy: String

    init(cost: UInt8) async throws {
        self.cost = cost
        let pool = NIOThreadPool.singleton
        self.decoy = try await pool.runIfActive { Bcrypt.hash(UUIDString.random(), cost: cost) }
    }

    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    func verify(_ password: String, against hash: String?) async throws -> Bool {
        let hash = hash ?? self.decoy
        let matches = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
        return matches && hash != self.decoy
    }
}

private enum UUIDString {
    static func random() -> String { (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined() }
}
