import Crypto
import Foundation

/// The access tokens a verifier accepted lately, so that a client presenting its token again
/// (every REST call, every reconnect of its sockets) costs a SHA-256 and a lookup instead of a
/// signature check.
///
/// A token is known by the SHA-256 of all its bytes: one that differs anywhere is checked in
/// full, and no token is kept in memory. An entry serves until the token's `exp`, checked again
/// at every use with jwt-kit's rule (valid while now < `exp`). Two generations bound the size:
/// when the newer one holds `capacity` tokens, the older is dropped and the newer takes its
/// place, and a token found in the older one moves to the newer; so the tokens in use stay, and
/// at most 2 × `capacity` are held. A capacity of 0 keeps nothing.
///
/// Pure state, no clock or lock of its own: ``AccessTokenVerifier`` keeps it under the lock of
/// its keys, so changing the keys and dropping the tokens they accepted is one step.
struct VerifiedTokens {
    private struct Entry {
        var token: VerifiedAccessToken
        var expiresAt: Date
    }

    let capacity: Int
    private var newer: [SHA256Digest: Entry] = [:]
    private var older: [SHA256Digest: Entry] = [:]

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    /// How many tokens are held (both generations).
    var count: Int { self.newer.count + self.older.count }

    /// What the token with this digest was verified to, if it was and has not expired at `now`.
    mutating func lookup(_ digest: SHA256Digest, now: Date) -> VerifiedAccessToken? {
        if let entry = self.newer[digest] {
            guard now < entry.expiresAt else {
                self.newer[digest] = nil
                return nil
            }
            return entry.token
        }
        guard let entry = self.older.removeValue(forKey: digest), now < entry.expiresAt else { return nil }
        self.insert(digest, entry)
        return entry.token
    }

    /// Remembers a token that was just verified, until `expiresAt` (its `exp`).
    mutating func insert(_ digest: SHA256Digest, token: VerifiedAccessToken, expiresAt: Date) {
        self.insert(digest, Entry(token: token, expiresAt: expiresAt))
    }

    private mutating func insert(_ digest: SHA256Digest, _ entry: Entry) {
        guard self.capacity > 0 else { return }
        if self.newer.count >= self.capacity {
            self.older = self.newer
            self.newer = [:]
        }
        self.newer[digest] = entry
    }

    /// Forgets every token (the keys that accepted them changed).
    mutating func removeAll() {
        self.newer = [:]
        self.older = [:]
    }
}
