import Foundation
import Logging
import MessengerAMQP
import MessengerContracts
import MessengerTokens
import Synchronization

/// Checks access tokens as auth would, with no call per request: against auth's public keys and
/// the login sessions it revoked.
///
/// The keys are fetched over RPC at start, replaced when auth announces new ones
/// (`auth.keys_changed.v1`), fetched again (at most every few seconds, ``KeyFetchThrottle``)
/// when a token names a key id that is not known, and with the revoked sessions every `REVOKED_SESSIONS_SYNC_SECONDS`
/// (a key auth no longer lists, announced while this gateway was away from the broker, is
/// dropped within that; until the fifty-third session it stayed accepted until a restart). The revoked sessions come from `auth.sessions_revoked.v1` and from
/// `auth.revoked_sessions.v1` at start and then every `REVOKED_SESSIONS_SYNC_SECONDS`
/// (``AuthEventListener``).
final class AccessTokenCheck: Sendable {
    let verifier: AccessTokenVerifier
    let revoked = RevokedSessionSet()
    private let rpc: RPCClient
    private let logger: Logger
    /// The fetches of the keys for tokens that name an unknown one: at most four a second, so a
    /// made-up key id waits a quarter of a second at most for its 401. With 5 s (until the
    /// fifty-eighth session) a test suite's second made-up id waited up to 5 s, and a stock
    /// python-socketio client, which waits 1 s for its CONNECT's answer, never heard
    /// `unauthorized` (a review).
    static let keyFetchInterval: Duration = .milliseconds(250)
    /// After a failed fetch (auth away), tokens naming an unknown key are `unavailable` at once
    /// for this long.
    static let keyFetchPauseAfterFailure: Duration = .seconds(5)
    private let keyFetch = KeyFetchThrottle(
        interval: AccessTokenCheck.keyFetchInterval, afterFailure: AccessTokenCheck.keyFetchPauseAfterFailure)
    private let revocationsFetched = Atomic(false)
    private let revocationsPlace = RevokedSessionsPlace()
    /// Key sets announced so far (``announced(_:)``).
    private let announcements = Atomic<UInt64>(0)

    /// Whether the revoked sessions were fetched from auth at least once. Before that a revoked
    /// token would pass, so the gateway checks no token (a gateway starting while auth's
    /// database is away could otherwise take revoked tokens for as long as that lasts).
    var knowsRevocations: Bool { self.revocationsFetched.load(ordering: .acquiring) }

    init(audience: TokenAudience, rpc: RPCClient, logger: Logger) {
        self.verifier = AccessTokenVerifier(expected: audience)
        self.rpc = rpc
        self.logger = logger
    }

    /// Fetches the key set from auth. An announcement applied while the fetch was under way is
    /// newer than its answer, which is then dropped (it could bring a retired key back, or take
    /// the new one away, until the next fetch; the session's last review). An announcement that
    /// comes while the answer's keys are prepared counts too: the verifier asks just before it
    /// stores them (until the fifty-fifth session the answer was looked at only before, and
    /// could overwrite the announced set; a review).
    func refresh() async throws {
        let announcedBefore = self.announcements.load(ordering: .acquiring)
        let set = try await self.rpc.call(AuthMessage.jwks, to: .auth, payload: EmptyPayload(), replyAs: JSONWebKeySet.self)
        let superseded = { self.announcements.load(ordering: .acquiring) != announcedBefore }
        guard !superseded() else { return }
        if try await self.verifier.update(set, unless: superseded) {
            self.logger.info("verification keys loaded", metadata: ["kids": "\(set.keys.map(\.kid))"])
        }
    }

    /// Takes the key set auth announced (`auth.keys_changed.v1`); true when it changed the keys.
    func announced(_ set: JSONWebKeySet) async throws -> Bool {
        self.announcements.add(1, ordering: .releasing)
        return try await self.verifier.update(set)
    }

    /// Fetches the sessions auth revoked lately, and those ended since the last answer left
    /// off (a gateway cut off from the broker longer than a token lives missed their
    /// announcements), and hands those that were not known to `close`, answer by answer: the
    /// place moves past an answer only once its sessions' sockets are closed.
    func syncRevokedSessions(close: (RevokedSessions) async -> Void) async throws {
        try await self.revocationsPlace.sync(
            ask: { request in
                try await self.rpc.call(
                    AuthMessage.revokedSessions, to: .auth, payload: request, replyAs: RevokedSessionList.self)
            },
            take: { answer in
                let added = answer.items.compactMap { self.revoke($0) }
                self.revocationsFetched.store(true, ordering: .releasing)
                for revoked in added { await close(revoked) }
            })
    }

    /// Records `revoked`; returns the sessions of it whose sockets are to be closed: those that
    /// were not known yet, or nil if none. A revocation that comes after its sessions' tokens
    /// all expired (a gateway cut off from the broker longer than that, an outbox relay that
    /// published late) has its sessions' sockets closed all the same: a socket outlives the
    /// token it connected with. Until the forty-fifth session such a revocation was dropped
    /// whole, and the sockets stayed (review). It is kept too, within the set's retention, so
    /// that the commands those sockets queued are refused (until the forty-ninth session they
    /// ran: a review).
    func revoke(_ revoked: RevokedSessions, now: Date = Date()) -> RevokedSessions? {
        let added = self.revoked.insert(revoked, now: now)
        guard revoked.until > now else { return revoked.sessionIds.isEmpty ? nil : revoked }
        guard !added.isEmpty else { return nil }
        return RevokedSessions(userId: revoked.userId, sessionIds: added.map(EntityID.init), until: revoked.until)
    }

    /// Who a valid access token of a session that was not revoked speaks for, or nil; throws
    /// `unavailable` when the token names a key this gateway does not know and could not fetch
    /// the keys (auth away): the token may be valid, and clients take `unauthorized` for a
    /// logout. Until the fifty-sixth session such a token got 401, and so did every other one
    /// naming the new key while a fetch was under way (a review).
    func verify(_ token: String) async throws -> VerifiedAccessToken? {
        let verified: VerifiedAccessToken
        do {
            verified = try await self.verifier.verify(token)
        } catch .unknownKey(let kid) where !kid.isEmpty {
            let fetched = try await self.keyFetch.fetch(for: kid) {
                try await self.refresh()
                return Set(self.verifier.keySet.keys.map(\.kid))
            }
            guard fetched == .fetched, let retried = try? await self.verifier.verify(token) else { return nil }
            verified = retried
        } catch {
            return nil
        }
        if let session = verified.session, self.revoked.contains(session) { return nil }
        return verified
    }
}
