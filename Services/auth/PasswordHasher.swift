import Crypto
import HummingbirdBcrypt
import NIOPosix

/// bcrypt on NIO's blocking thread pool: a hash takes about a quarter of a second at cost 12,
/// which must never run on an event loop or tie up the cooperative pool.
///
/// bcrypt reads at most 72 bytes of its input and stops at a NUL byte, while a password may be
/// 128 code points (up to 512 bytes of UTF-8). So the password is first reduced to the hex of its
/// SHA-256 (64 ASCII characters) and that is what bcrypt hashes; the stored hash carries the
/// prefix ``prehashedPrefix`` to say so. A stored hash without it (a plain bcrypt hash, as this
/// service wrote before) is still verified against the password itself.
struct PasswordHasher: Sendable {
    static let prehashedPrefix = "bcrypt-sha256$"

    let cost: UInt8
    /// A hash of a random password at the same cost: verifying against it makes a login for an
    /// unknown user take as long as one with a wrong password.
    let decoy: String

    init(cost: UInt8) async throws {
        self.cost = cost
        let pool = NIOThreadPool.singleton
        self.decoy = try await pool.runIfActive { Self.prehashedPrefix + Bcrypt.hash(Self.prehash(.random()), cost: cost) }
    }

    func hash(_ password: String) async throws -> String {
        let cost = self.cost
        return try await NIOThreadPool.singleton.runIfActive {
            Self.prehashedPrefix + Bcrypt.hash(Self.prehash(password), cost: cost)
        }
    }

    func verify(_ password: String, against hash: String?) async throws -> Bool {
        let hash = hash ?? self.decoy
        let matches = try await NIOThreadPool.singleton.runIfActive {
            if hash.hasPrefix(Self.prehashedPrefix) {
                Bcrypt.verify(Self.prehash(password), hash: String(hash.dropFirst(Self.prehashedPrefix.count)))
            } else {
                Bcrypt.verify(password, hash: hash)
            }
        }
        return matches && hash != self.decoy
    }

    /// The lowercase hex of the password's SHA-256: every byte of the password counts, and
    /// bcrypt gets 64 bytes with no NUL among them.
    static func prehash(_ password: String) -> String {
        SHA256.hash(data: Array(password.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

extension String {
    /// A random password for the decoy hash.
    fileprivate static func random() -> String {
        (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
    }
}
