import Crypto
import Foundation
import HummingbirdBcrypt
import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// bcrypt on NIO's blocking thread pool: a hash takes about a quarter of a second at cost 12,
/// which must never run on an event loop or tie up the cooperative pool.
///
/// bcrypt reads at most 72 bytes of its input and stops at a NUL byte, while a password may be
/// 128 code points (up to 512 bytes of UTF-8). So the password is first brought to NFC (`é`
/// typed as one code point or as `e` and an accent is one password), then reduced to the hex of
/// its SHA-256 (64 ASCII characters), and that is what bcrypt hashes; the stored hash carries
/// the prefix ``prefix`` to say so. Hashes written before are verified as they were made: one
/// with ``unnormalizedPrefix`` against the SHA-256 of the password as typed, one with no prefix
/// (a plain bcrypt hash) against the password itself. Each hash is checked once, in its own
/// form, so a wrong password costs one bcrypt whatever the hash's age.
///
/// The pool has a thread per core, so a burst of logins waits in line. Each call takes its
/// request's deadline (``RPCContext/deadline``), and a check that cannot end before it is not
/// done (``CallerGaveUp``): refused at once when the line ahead is already longer than the
/// caller will wait (``PasswordCheckQueue``), and skipped at its turn when the caller stopped
/// waiting meanwhile. Done anyway, such checks answer no one and only delay the ones behind
/// them, among them the retries of the callers that gave up, until no check ends in time. A new
/// hash that ends after the deadline is thrown away (``hash(_:before:)``).
struct PasswordHasher: Sendable {
    /// bcrypt of the SHA-256 of the password in NFC (since the thirty-eighth session).
    static let prefix = "bcrypt-sha256-nfc$"
    /// bcrypt of the SHA-256 of the password as typed (2026-12-02 to the thirty-eighth session).
    static let unnormalizedPrefix = "bcrypt-sha256$"

    /// The check could not end before its caller stops waiting, so it was not done.
    struct CallerGaveUp: Error {
        /// How long a check arriving when this one was given up would have waited for a thread.
        var lineWait: Duration

        /// Whole seconds, at least 1, for a caller to wait before it tries again (`Retry-After`).
        var retryAfterSeconds: Int {
            let (seconds, attoseconds) = self.lineWait.components
            return max(1, Int(seconds) + (attoseconds > 0 ? 1 : 0))
        }
    }

    /// The line of checks, under a lock.
    private final class Line: Sendable {
        let state: Mutex<PasswordCheckQueue>
        init(_ queue: PasswordCheckQueue) { self.state = Mutex(queue) }
    }

    private static let skipped = Counter(label: "password_checks_skipped_total")
    /// `password_hashes_total`: new hashes begun (registrations, password changes, rehashes).
    private static let hashes = Counter(label: "password_hashes_total")

    let cost: UInt8
    /// A hash of a random password at the same cost: verifying against it makes a login for an
    /// unknown user take as long as one with a wrong password.
    let decoy: String
    private let line: Line

    init(cost: UInt8) async throws {
        self.cost = cost
        let started = ContinuousClock.now
        self.decoy = try await NIOThreadPool.singleton.runIfActive {
            Self.prefix + Bcrypt.hash(Self.prehash(.random()), cost: cost)
        }
        self.line = Line(
            PasswordCheckQueue(
                threads: NIOSingletons.blockingPoolThreadCountSuggestion, firstDuration: ContinuousClock.now - started))
    }

    /// A new hash of `password`, for an account or a password change that is written next. A
    /// hash that ends after `deadline` throws ``CallerGaveUp`` too: its caller has been told
    /// 503, and must not find the write done anyway (an account that makes its registration's
    /// retry a 409, a password that makes its retry's `currentPassword` wrong).
    func hash(_ password: String, before deadline: ContinuousClock.Instant?) async throws -> String {
        let cost = self.cost
        Self.hashes.increment()
        let hash = try await self.check(before: deadline) {
            Self.prefix + Bcrypt.hash(Self.prehash(password.precomposedStringWithCanonicalMapping), cost: cost)
        }
        if let deadline, deadline <= .now { throw self.gaveUp() }
        return hash
    }

    func verify(_ password: String, against hash: String?, before deadline: ContinuousClock.Instant?) async throws -> Bool {
        let hash = hash ?? self.decoy
        let matches = try await self.check(before: deadline) {
            if hash.hasPrefix(Self.prefix) {
                Bcrypt.verify(
                    Self.prehash(password.precomposedStringWithCanonicalMapping), hash: String(hash.dropFirst(Self.prefix.count)))
            } else if hash.hasPrefix(Self.unnormalizedPrefix) {
                Bcrypt.verify(Self.prehash(password), hash: String(hash.dropFirst(Self.unnormalizedPrefix.count)))
            } else {
                Bcrypt.verify(password, hash: hash)
            }
        }
        return matches && hash != self.decoy
    }

    /// Whether a stored hash is of an older form or another cost than new ones: its account's
    /// password is hashed again at its next successful login. (Otherwise an account keeps the
    /// cost it was made with for good, and a wrong password for it answers as fast as that
    /// cost, which tells a prober it exists: the decoy of an unknown login has today's cost.)
    ///
    /// `password` is the one that just verified. A hash with no prefix is plain bcrypt, which
    /// reads only a password's first 72 bytes and stops at a NUL (a password of exactly 72
    /// bytes verifies against any longer one that starts with it): another password that shares
    /// those verified too, and hashed again whole it would become the account's password. Such
    /// an account keeps its hash until its password changes (until the fifty-third session a
    /// typo after the 72nd byte replaced the password; a review).
    func needsRehash(_ hash: String, password: String) -> Bool {
        let isPlainBcrypt = !hash.hasPrefix(Self.prefix) && !hash.hasPrefix(Self.unnormalizedPrefix)
        if isPlainBcrypt, password.utf8.count >= 72 || password.utf8.contains(0) { return false }
        guard hash.hasPrefix(Self.prefix) else { return true }
        // `$2b$12$...` after the prefix.
        let bcrypt = hash.dropFirst(Self.prefix.count).split(separator: "$", omittingEmptySubsequences: true)
        guard bcrypt.count >= 2, let cost = UInt8(bcrypt[1]) else { return true }
        return cost != self.cost
    }

    /// The checks waiting for a thread or running.
    var checksInLine: Int { self.line.state.withLock { $0.inLine } }

    /// Throws ``CallerGaveUp`` when a check arriving now could not end before `deadline`: a
    /// request that must do other work first (a login reserves its place in the throttle and
    /// looks the user up) asks before that work, which would be wasted too.
    func ensureACheckCanEnd(before deadline: ContinuousClock.Instant?) throws {
        guard self.line.state.withLock({ $0.wouldTake(at: .now, deadline: deadline) }) else {
            throw self.skip()
        }
    }

    /// Runs `work` on the pool when it can end before `deadline`; throws ``CallerGaveUp`` when
    /// it cannot (at once) or when the deadline passed while it waited for a thread.
    private func check<Result: Sendable>(
        before deadline: ContinuousClock.Instant?, _ work: @escaping @Sendable () -> Result
    ) async throws -> Result {
        let line = self.line
        guard line.state.withLock({ $0.admit(at: .now, deadline: deadline) }) else {
            throw self.skip()
        }
        let (result, duration): (Result?, Duration?)
        do {
            (result, duration) = try await NIOThreadPool.singleton.runIfActive {
                let started = ContinuousClock.now
                if let deadline, deadline <= started { return (nil, nil) }
                let result = work()
                return (result, ContinuousClock.now - started)
            }
        } catch {
            line.state.withLock { $0.ended(after: nil) }
            throw error
        }
        line.state.withLock { $0.ended(after: duration) }
        guard let result else {
            throw self.skip()
        }
        return result
    }

    /// Counts a check not done, and the error that says so.
    private func skip() -> CallerGaveUp {
        Self.skipped.increment()
        return self.gaveUp()
    }

    /// The error for a caller that gave up, with the line's wait as it is now.
    private func gaveUp() -> CallerGaveUp {
        CallerGaveUp(lineWait: self.line.state.withLock { $0.waitForAThread })
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
