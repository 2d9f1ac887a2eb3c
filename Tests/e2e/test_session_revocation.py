"""Revoked login sessions (docs/auth.md, "Revoked sessions"): a logout, a refresh token's reuse
or a password change (for every session but the caller's) ends login sessions everywhere, at
once. Their access
tokens are refused on REST and at CONNECT although they have not expired, and their sockets, on
every gateway, get a server-side DISCONNECT (stock clients do not reconnect after one). Other
sessions of the same user, and other users, are untouched. A gateway that starts later learns
the revocations from auth."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pika
import pytest
import requests
import socketio
import websocket
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from e2e_support import (GATEWAY_URL, JWT_AUDIENCE, JWT_ISSUER, RABBITMQ_URI, Api, assert_error, assert_status, b64url,
                         b64url_json, call_service, connect_error, gateway_process, jwt_split, psql)

SERVER_DISCONNECT = socketio.Client.reason.SERVER_DISCONNECT


class Socket:
    """A python-socketio client that records why it was disconnected."""

    def __init__(self, token: str, *, url: str = GATEWAY_URL, transport: str = "websocket") -> None:
        self.reasons: queue.Queue = queue.Queue()
        # Reconnection on: a server-side DISCONNECT must still not bring it back.
        self.sio = socketio.Client(reconnection=True, reconnection_delay=0.2)
        self.sio.on("disconnect", lambda reason=None: self.reasons.put(reason))
        self.sio.connect(url, auth={"token": token}, transports=[transport], wait_timeout=10)

    def assert_disconnected_by_server(self, timeout: float = 10) -> None:
        try:
            reason = self.reasons.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the socket was not disconnected within {timeout} s")
        assert reason == SERVER_DISCONNECT, reason
        time.sleep(1)  # give a reconnect, which must not happen, the time to happen
        assert not self.sio.connected

    def assert_still_connected(self) -> None:
        assert self.reasons.empty(), self.reasons.get()
        assert self.sio.call("ping", "still here", timeout=5) == {"ok": True, "data": {"pong": "still here"}}

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def refused_at_connect(token: str, url: str = GATEWAY_URL) -> None:
    assert connect_error(url, {"token": token}, transports=["websocket"]) == {"message": "unauthorized"}


def me(api: Api, token: str) -> requests.Response:
    return api.get("/api/users/me", token=token)


def sid(access_token: str) -> str:
    return jwt_split(access_token)[1]["sid"]


@contextmanager
def replica_gateway(number: int, **settings: str) -> Iterator[str]:
    """Another gateway process on ports of its own, for as long as the block runs."""
    with gateway_process(5080 + number, 9180 + number, **settings) as (url, _):
        yield url


def test_access_tokens_name_their_login_session(api, account, login):
    acc = account()
    refreshed = api.post("/api/token/refresh", {"refreshToken": acc.refresh}).json()
    other = login(acc.username, acc.password)
    assert uuid.UUID(sid(acc.access))
    assert sid(refreshed["accessToken"]) == sid(acc.access)  # a rotation stays in the session
    assert sid(other["accessToken"]) != sid(acc.access)  # a login starts another


def test_logout_disconnects_that_sessions_sockets_and_refuses_its_access_token(api, account, login):
    acc = account()
    stranger = account()
    other_device = login(acc.username, acc.password)
    # The session's access token, rotated once: the logout names the newest refresh token.
    rotated = api.post("/api/token/refresh", {"refreshToken": acc.refresh}).json()
    ending = [Socket(acc.access), Socket(rotated["accessToken"], transport="polling")]
    staying = [Socket(other_device["accessToken"]), Socket(stranger.access)]
    try:
        assert_status(api.post("/api/logout", {"refreshToken": rotated["refreshToken"]}), 204)
        for socket in ending:
            socket.assert_disconnected_by_server()
        for socket in staying:
            socket.assert_still_connected()
        for token in (acc.access, rotated["accessToken"]):
            assert_error(me(api, token), 401, "unauthorized")
            refused_at_connect(token)
        assert_status(me(api, other_device["accessToken"]), 200)
        # Logging out again changes nothing for anyone.
        assert_status(api.post("/api/logout", {"refreshToken": rotated["refreshToken"]}), 204)
        for socket in staying:
            socket.assert_still_connected()
    finally:
        for socket in ending + staying:
            socket.close()


def test_a_refresh_token_reuse_disconnects_its_session(api, account, login):
    acc = account()
    other_device = login(acc.username, acc.password)
    rotated = api.post("/api/token/refresh", {"refreshToken": acc.refresh}).json()
    thief = Socket(rotated["accessToken"])
    owner = Socket(other_device["accessToken"])
    try:
        assert_error(api.post("/api/token/refresh", {"refreshToken": acc.refresh}), 401, "unauthorized")
        thief.assert_disconnected_by_server()
        owner.assert_still_connected()
        assert_error(me(api, rotated["accessToken"]), 401, "unauthorized")
    finally:
        thief.close()
        owner.close()


def test_a_password_change_ends_every_other_session_of_the_user(api, account, login):
    acc = account()
    stranger = account()
    other_device = login(acc.username, acc.password)
    third_device = login(acc.username, acc.password)
    ending = [Socket(other_device["accessToken"], transport="polling"), Socket(third_device["accessToken"])]
    staying = [Socket(acc.access), Socket(stranger.access)]
    try:
        new_password = f"new-{uuid.uuid4().hex[:16]}"
        # A session named in the body is not the caller's: only the token says which one asks.
        body = {"password": new_password, "currentPassword": acc.password, "callerSession": sid(other_device["accessToken"])}
        assert_status(api.patch(f"/api/users/{acc.id}", body, token=acc.access), 200)
        for socket in ending:
            socket.assert_disconnected_by_server()
        for socket in staying:
            socket.assert_still_connected()
        for token in (other_device["accessToken"], third_device["accessToken"]):
            assert_error(me(api, token), 401, "unauthorized")
            refused_at_connect(token)
        # The session that changed the password keeps its access token until it expires, but,
        # as every refresh token of the user, its refresh token is revoked.
        assert_status(me(api, acc.access), 200)
        assert_error(api.post("/api/token/refresh", {"refreshToken": acc.refresh}), 401, "unauthorized")
        # A login with the new password is a new session, and works at once.
        fresh = login(acc.username, new_password)
        assert_status(me(api, fresh["accessToken"]), 200)
        again = Socket(fresh["accessToken"])
        again.assert_still_connected()
        again.close()
    finally:
        for socket in ending + staying:
            socket.close()


def test_a_revocation_disconnects_the_sessions_sockets_on_every_gateway(api, account):
    acc = account()
    with replica_gateway(1) as replica:
        here = Socket(acc.access)
        there = Socket(acc.access, url=replica)
        try:
            assert_status(api.post("/api/logout", {"refreshToken": acc.refresh}), 204)
            here.assert_disconnected_by_server()
            there.assert_disconnected_by_server()
            assert_error(Api(replica).get("/api/users/me", token=acc.access), 401, "unauthorized")
        finally:
            here.close()
            there.close()


def test_a_gateway_started_after_a_revocation_refuses_the_revoked_token(api, account):
    revoked = account()
    valid = account()
    assert_status(api.post("/api/logout", {"refreshToken": revoked.refresh}), 204)
    with replica_gateway(2) as replica:
        assert_error(Api(replica).get("/api/users/me", token=revoked.access), 401, "unauthorized")
        refused_at_connect(revoked.access, url=replica)
        assert_status(Api(replica).get("/api/users/me", token=valid.access), 200)
        socket = Socket(valid.access, url=replica)
        socket.assert_still_connected()
        socket.close()


def test_a_client_that_ignores_the_disconnect_is_closed_soon_after(api, account):
    acc = account()
    url = GATEWAY_URL.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    ws = websocket.create_connection(url, timeout=15)
    try:
        assert ws.recv().startswith("0")
        ws.send("40" + json.dumps({"token": acc.access}))
        assert ws.recv().startswith("40")
        assert_status(api.post("/api/logout", {"refreshToken": acc.refresh}), 204)
        revoked_at = time.monotonic()
        frames = []
        while True:
            try:
                frame = ws.recv()
            except websocket.WebSocketConnectionClosedException:
                break
            if not frame:
                break
            frames.append(frame)
        waited = time.monotonic() - revoked_at
        # The DISCONNECT for "/", then, as the client does not close, the Engine.IO close.
        assert frames == ["41", "1"], frames
        assert 3 < waited < 25, waited  # a client never closed waits for the ping timeout (45 s)
    finally:
        ws.close()


def test_a_revocation_whose_announcement_never_came_is_applied_at_the_next_sync(api, account):
    """What a gateway misses while its queue is gone (the broker away, or before it started) it
    learns from auth's list at the next sync. The announcement is left out here by writing the
    revoked session straight into auth's table, as a revocation whose event was lost would be."""
    acc = account()
    session = sid(acc.access)
    with replica_gateway(3, REVOKED_SESSIONS_SYNC_SECONDS="1") as replica:
        socket = Socket(acc.access, url=replica)
        try:
            socket.assert_still_connected()
            psql(
                "INSERT INTO auth.revoked_sessions (family_id, user_id, until) "
                f"VALUES ('{uuid.UUID(session)}', '{uuid.UUID(acc.id)}', now() + interval '20 minutes')"
            )
            socket.assert_disconnected_by_server(timeout=10)
            assert_error(Api(replica).get("/api/users/me", token=acc.access), 401, "unauthorized")
        finally:
            socket.close()


def test_a_key_auth_no_longer_lists_is_dropped_at_the_next_sync(api, account):
    """A gateway takes announced keys as they are; a key set announced while it was away from
    the broker (a retired key leaving it, a leaked one removed) never reaches it. It fetches
    auth's set with each sync of the revoked sessions, so a key auth does not list is dropped
    within that. Here a stray announcement adds a key auth never had: a token it signs passes
    on the replica at first, and is refused after the next sync. Until the fifty-third session
    such a key stayed accepted until the gateway restarted (a review)."""
    acc = account()
    stray = Ed25519PrivateKey.generate()
    kid = f"stray-{uuid.uuid4().hex[:8]}"
    x = b64url(stray.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": kid}
    claims = {"sub": acc.id, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4()), "iss": JWT_ISSUER,
              "aud": JWT_AUDIENCE}
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    forged = f"{signing_input}.{b64url(stray.sign(signing_input.encode('ascii')))}"
    with replica_gateway(4, REVOKED_SESSIONS_SYNC_SECONDS="2") as replica:
        replica_api = Api(replica)
        keys = replica_api.get("/.well-known/jwks.json").json()["keys"]
        stray_key = {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x}
        # A sync (every 2 s) that falls between the announcement and the first look drops the key
        # before the test sees it taken; so it is announced again until it is seen taken (each
        # announcement also discards a sync already under way).
        deadline, taken = time.monotonic() + 15, False
        while not taken and time.monotonic() < deadline:
            announce({"type": "auth.keys_changed.v1", "id": str(uuid.uuid4()),
                      "occurredAt": "2026-01-01T00:00:00.000Z", "data": {"keys": keys + [stray_key]}})
            look_until = time.monotonic() + 0.5
            while not (taken := me(replica_api, forged).status_code == 200) and time.monotonic() < look_until:
                time.sleep(0.05)
        assert taken, "the stray key was never taken within 15 s: the test proves nothing"
        deadline = time.monotonic() + 10
        while me(replica_api, forged).status_code == 200:
            assert time.monotonic() < deadline, "the key auth does not list was still accepted after 10 s"
            time.sleep(0.2)
        assert_error(me(replica_api, forged), 401, "unauthorized")
        assert_status(me(replica_api, acc.access), 200)


def test_a_gateway_away_longer_than_a_token_lives_is_told_of_the_sessions_ended_meanwhile(account):
    """`auth.revoked_sessions.v1` as a gateway asks it, through the broker: each answer carries
    `next`, where the gateway's next sync starts (`endedSince`). From a place older than the
    sessions whose tokens may be unexpired (a gateway cut off from the broker for longer), the
    sessions ended since come too, with their past `until`, in pages (`more`). Here a session
    ended an hour ago, no longer among the unexpired ones, as a gateway away for two hours
    would have missed it. Until the forty-eighth session such a gateway never learnt of it."""
    acc = account()
    session = sid(acc.access)
    psql(f"INSERT INTO auth.ended_sessions (family_id, user_id, ended_at) "
         f"VALUES ('{uuid.UUID(session)}', '{uuid.UUID(acc.id)}', now() - interval '1 hour')")

    def ask(place: str | None) -> dict:
        answer = call_service("auth", "auth.revoked_sessions.v1", {} if place is None else {"endedSince": place},
                              waiting_ms=10_000)
        assert answer is not None and answer.get("ok") is True, answer
        return answer["data"]

    fresh = ask(None)
    assert isinstance(fresh["next"], str) and fresh["more"] is False, fresh
    assert session not in [s for item in fresh["items"] for s in item["sessionIds"]]

    place: str | None = psql("SELECT (extract(epoch FROM now() - interval '2 hours') * 1000000)::bigint")
    told = {}
    for _ in range(50):
        page = ask(place)
        for item in page["items"]:
            for s in item["sessionIds"]:
                told[s] = item
        place = page["next"]
        if not page["more"]:
            break
    assert session in told, "the session ended an hour ago was not told"
    assert told[session]["userId"] == acc.id
    assert told[session]["until"] < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), told[session]

    refused = call_service("auth", "auth.revoked_sessions.v1", {"endedSince": "yesterday"}, waiting_ms=10_000)
    assert refused is not None and refused.get("ok") is False and refused["error"]["code"] == "invalid_argument", refused


def test_a_revocation_announced_after_its_tokens_expired_still_closes_the_sessions_sockets(api, account):
    """A revocation can reach a gateway after its session's last access token expired (the
    gateway was cut off from the broker for longer, or auth's outbox relay published late): its
    `until` is past. No token of the session passes any more, but a socket connected with one
    is still open, and must be closed. Until the forty-fifth session the gateway dropped such an
    announcement whole, and the socket stayed, taking pushes and commands."""
    acc = account()
    socket = Socket(acc.access)
    try:
        socket.assert_still_connected()
        announce_late_revocation(acc, "2026-01-01T00:16:00.000Z")
        socket.assert_disconnected_by_server(timeout=10)
    finally:
        socket.close()


def announce_late_revocation(acc: Any, until: str) -> None:
    """Publishes, as auth would, the revocation of `acc`'s session with `until` in the past."""
    announce({
        "type": "auth.sessions_revoked.v1", "id": str(uuid.uuid4()),
        "occurredAt": "2026-01-01T00:00:00.000Z", "actorId": acc.id,
        "data": {"userId": acc.id, "sessionIds": [sid(acc.access)], "until": until},
    })


def announce(envelope: dict[str, Any]) -> None:
    """Publishes `envelope` on `messenger.events` as auth would (its type is the routing key),
    persistent and confirmed."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "messenger.events", envelope["type"], json.dumps(envelope).encode(),
            pika.BasicProperties(delivery_mode=2, content_type="application/json", message_id=envelope["id"],
                                 type=envelope["type"]))
    finally:
        connection.close()


def test_a_session_spared_by_a_password_change_ends_at_its_logout_or_at_the_next_change(api, account, login):
    """The session that changed the password keeps working, but it is not ended for good: its
    logout ends it, and so does a password change from another session. (Its refresh tokens were
    already revoked, so both found nothing to revoke and announced nothing: the device that logged
    out kept its socket and its access token.)"""
    acc = account()
    phone = Socket(acc.access)
    try:
        first = f"new-{uuid.uuid4().hex[:16]}"
        assert_status(api.patch(f"/api/users/{acc.id}", {"password": first, "currentPassword": acc.password},
                                token=acc.access), 200)
        phone.assert_still_connected()
        assert_status(api.post("/api/logout", {"refreshToken": acc.refresh}), 204)
        phone.assert_disconnected_by_server()
        assert_error(me(api, acc.access), 401, "unauthorized")
        refused_at_connect(acc.access)
    finally:
        phone.close()

    laptop_tokens = login(acc.username, first)
    tablet_tokens = login(acc.username, first)
    laptop, tablet = Socket(laptop_tokens["accessToken"]), Socket(tablet_tokens["accessToken"])
    try:
        second = f"new-{uuid.uuid4().hex[:16]}"
        assert_status(api.patch(f"/api/users/{acc.id}", {"password": second, "currentPassword": first},
                                token=laptop_tokens["accessToken"]), 200)
        tablet.assert_disconnected_by_server()
        laptop.assert_still_connected()
        third = f"new-{uuid.uuid4().hex[:16]}"
        desk = login(acc.username, second)
        assert_status(api.patch(f"/api/users/{acc.id}", {"password": third, "currentPassword": second},
                                token=desk["accessToken"]), 200)
        laptop.assert_disconnected_by_server()
        assert_error(me(api, laptop_tokens["accessToken"]), 401, "unauthorized")
        assert_status(me(api, desk["accessToken"]), 200)
    finally:
        laptop.close()
        tablet.close()


def test_a_session_spared_by_a_password_change_ends_once_its_access_tokens_can_have_expired(api, account):
    """The caller's session keeps its access token after a password change, but no refresh
    token: it ends once that token can have expired (its lifetime and a minute), and its
    sockets are closed then. Here the end is brought forward in auth's table, as if that time
    had passed. Until the fifty-third session it ended a day after its refresh tokens' expiry,
    a month later, and its sockets stayed open until then (a review)."""
    acc = account()
    session = sid(acc.access)
    phone = Socket(acc.access)
    try:
        new = f"new-{uuid.uuid4().hex[:16]}"
        assert_status(api.patch(f"/api/users/{acc.id}", {"password": new, "currentPassword": acc.password},
                                token=acc.access), 200)
        lifetime = int(os.environ.get("JWT_ACCESS_TTL_SECONDS", "900"))
        left = float(psql(f"SELECT extract(epoch FROM end_at - now()) FROM auth.spared_sessions WHERE family_id = '{session}'"))
        assert lifetime < left <= lifetime + 60, left
        phone.assert_still_connected()
        psql(f"UPDATE auth.spared_sessions SET end_at = now() - interval '1 second' WHERE family_id = '{session}'")
        phone.assert_disconnected_by_server(timeout=15)  # the next prune pass (every 2 s here)
        assert_error(me(api, acc.access), 401, "unauthorized")
        assert psql(f"SELECT count(*) FROM auth.spared_sessions WHERE family_id = '{session}'") == "0"
    finally:
        phone.close()


def test_a_spent_token_of_a_session_a_password_change_spared_is_a_reuse(api, account):
    """A thief refreshed with the phone's token and has a socket on its session; the owner, on
    the phone, changes the password, which spares that session. The phone's old token, presented
    next, is a reuse: the session ends, and the thief's socket with it. Until the fifty-third
    session a revoked token was refused before it was found spent, and the session went on (a
    review)."""
    acc = account()
    stolen = api.post("/api/token/refresh", {"refreshToken": acc.refresh}).json()
    thief = Socket(stolen["accessToken"])
    try:
        new = f"new-{uuid.uuid4().hex[:16]}"
        assert_status(api.patch(f"/api/users/{acc.id}", {"password": new, "currentPassword": acc.password},
                                token=acc.access), 200)
        thief.assert_still_connected()
        assert_error(api.post("/api/token/refresh", {"refreshToken": acc.refresh}), 401, "unauthorized")
        thief.assert_disconnected_by_server()
        assert_error(me(api, stolen["accessToken"]), 401, "unauthorized")
        # The thief's own token, never spent, is refused as revoked, and ends nothing more.
        assert_error(api.post("/api/token/refresh", {"refreshToken": stolen["refreshToken"]}), 401, "unauthorized")
    finally:
        thief.close()


def test_a_session_whose_last_token_is_old_is_still_ended_with_its_sockets(api, account, login):
    """A socket outlives its access token: a phone connected for hours without a refresh is a
    session whose newest token is old. Its logout still disconnects it (only sessions with a
    token signed in the last 16 minutes were announced). The session's token rows are made a day
    old here, as if the phone had been connected that long."""
    acc = account()
    phone = Socket(acc.access)
    try:
        psql(f"UPDATE auth.refresh_tokens SET created_at = now() - interval '1 day' WHERE family_id = '{sid(acc.access)}'")
        assert_status(api.post("/api/logout", {"refreshToken": acc.refresh}), 204)
        phone.assert_disconnected_by_server()
    finally:
        phone.close()


# ================================================================================================
# Pruning (docs/auth.md, "Pruning"; AUTH_PRUNE_INTERVAL_SECONDS is 2 in the test environment)
# ================================================================================================


def wait_for_sql(sql: str, expected: str, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (value := psql(sql)) != expected:
        assert time.monotonic() < deadline, f"{what}: {sql} gave {value!r}, not {expected!r}"
        time.sleep(0.3)


def test_a_session_whose_tokens_all_expired_is_ended_and_pruned_and_a_live_one_loses_only_spent_ones(api, account, login):
    acc = account()
    live = login(acc.username, acc.password)
    # The abandoned session: rotated once (one spent token, one current). The live one: twice.
    rotated = api.post("/api/token/refresh", {"refreshToken": acc.refresh}).json()
    live1 = api.post("/api/token/refresh", {"refreshToken": live["refreshToken"]}).json()
    live2 = api.post("/api/token/refresh", {"refreshToken": live1["refreshToken"]}).json()
    abandoned_sid, live_sid = sid(acc.access), sid(live["accessToken"])
    tokens = "SELECT count(*) FROM auth.refresh_tokens WHERE family_id = '{}'"
    assert psql(tokens.format(abandoned_sid)) == "2" and psql(tokens.format(live_sid)) == "3"
    abandoned, staying = Socket(rotated["accessToken"]), Socket(live2["accessToken"])
    try:
        # As after the refresh tokens' lifetime and a day more.
        psql(f"UPDATE auth.refresh_tokens SET expires_at = now() - interval '2 days' WHERE family_id = '{abandoned_sid}'")
        psql(
            "UPDATE auth.refresh_tokens SET expires_at = now() - interval '2 days' "
            f"WHERE family_id = '{live_sid}' AND spent_at IS NOT NULL"
        )
        # Ended like a logout: its socket, open all along, is disconnected, and its tokens go.
        abandoned.assert_disconnected_by_server(timeout=20)
        assert_error(me(api, rotated["accessToken"]), 401, "unauthorized")
        wait_for_sql(tokens.format(abandoned_sid), "0", "the ended session's tokens")
        # Its record stays a week after it ended (a gateway cut off from the broker meanwhile is
        # told of it when it is back), then goes.
        ended = f"SELECT count(*) FROM auth.ended_sessions WHERE family_id = '{abandoned_sid}'"
        time.sleep(3)  # a prune pass at least
        assert psql(ended) == "1"
        psql(f"UPDATE auth.ended_sessions SET ended_at = now() - interval '8 days' WHERE family_id = '{abandoned_sid}'")
        wait_for_sql(ended, "0", "the ended session's record")
        # The live session keeps its current token only, and goes on.
        wait_for_sql(tokens.format(live_sid), "1", "the live session's spent tokens")
        staying.assert_still_connected()
        assert_status(api.post("/api/token/refresh", {"refreshToken": live2["refreshToken"]}), 200)
        # A pruned spent token is refused as the expired token it is, not taken for a reuse.
        assert_error(api.post("/api/token/refresh", {"refreshToken": live["refreshToken"]}), 401, "unauthorized")
        staying.assert_still_connected()
    finally:
        abandoned.close()
        staying.close()


def test_login_counters_whose_window_ended_are_pruned(api, register):
    """LOGIN_WINDOW_SECONDS is 5 in the test environment; a counter goes two windows after it started."""
    user = register()
    assert api.post("/api/login", {"login": user.username, "password": "not the password"}).status_code == 401
    # The counter of an existing account is keyed by its id (LoginThrottle.keys, hashed).
    digest = base64.b64encode(hashlib.sha256(f"user:{user.user['id']}".encode()).digest()).decode()
    counter = f"SELECT count(*) FROM auth.login_failures WHERE key = 'login:{digest}'"
    assert psql(counter) == "1"
    wait_for_sql(counter, "0", "the expired login counter", timeout=30)


def test_the_pruning_job_deletes_expired_registration_counters():
    """REGISTRATION_WINDOW_SECONDS is 3600 (the default): a counter goes two windows after it
    started, and one in its window stays."""
    old, fresh = f"address:e2e-old-{uuid.uuid4().hex}", f"address:e2e-fresh-{uuid.uuid4().hex}"
    psql("INSERT INTO auth.registration_counts (key, registrations, window_started_at) VALUES "
         f"('{old}', 3, now() - interval '3 hours'), ('{fresh}', 3, now() - interval '90 minutes')")
    try:
        wait_for_sql(f"SELECT count(*) FROM auth.registration_counts WHERE key = '{old}'", "0",
                     "the expired registration counter", timeout=30)
        assert psql(f"SELECT count(*) FROM auth.registration_counts WHERE key = '{fresh}'") == "1"
    finally:
        psql(f"DELETE FROM auth.registration_counts WHERE key IN ('{old}', '{fresh}')")


def queued_commands_that_ran(account, end_session: Callable[[Any, Callable[[], None]], None]) -> int:
    """On a gateway with a command rate of 2 a second and a burst of 1, a socket queues 20
    `create_message` (no ack asked for); `end_session(acc, disconnect)` ends its session (and
    may disconnect the socket first). Returns how many of the 20 ran in the 12 s after the
    session ended, in which all that were left would have at that rate (those that ran before,
    while a slow machine ended the session, do not count; at least 5 must have been left, or
    the test would test nothing)."""
    acc, bob = account(), account()
    with replica_gateway(4, SOCKET_COMMAND_RATE="2", SOCKET_COMMAND_BURST="1") as replica:
        sio = socketio.Client(reconnection=False)
        sio.connect(replica, auth={"token": acc.access}, transports=["websocket"], wait_timeout=10)
        try:
            thread = sio.call("create_conversation", {"type": "DM", "memberIds": [bob.id]}, timeout=10)
            tid = thread["data"]["thread"]["id"]
            for n in range(20):
                sio.emit("create_message", {"threadId": tid, "clientMessageId": f"q{n}", "body": f"q{n}"})
            time.sleep(0.5)
            end_session(acc, sio.disconnect)
            ran_before = int(psql(f"SELECT count(*) FROM messaging.messages WHERE thread_id = '{tid}'"))
            assert ran_before <= 15, f"{ran_before} of the 20 queued commands ran before the session ended"
            time.sleep(12)
        finally:
            sio.disconnect()
    return int(psql(f"SELECT count(*) FROM messaging.messages WHERE thread_id = '{tid}'")) - ran_before


def test_commands_queued_by_a_socket_do_not_run_after_its_session_ends(api, account):
    """A socket queues 20 commands at 2 a second, then its session is logged out. What had not
    run by then does not run: until the forty-fourth session every queued command ran after the
    revocation disconnected the socket, at the user's rate (minutes of a stolen token's
    commands after the owner logged out)."""
    def log_out(acc: Any, _disconnect: Callable[[], None]) -> None:
        assert_status(api.post("/api/logout", {"refreshToken": acc.refresh}), 204)

    count = queued_commands_that_ran(account, log_out)
    assert count <= 5, f"{count} of the queued commands ran after the session ended"


def test_commands_queued_by_a_socket_do_not_run_after_a_revocation_announced_past_its_tokens_expiry(api, account):
    """As above, but the revocation reaches the gateway after its session's last token expired
    (its `until` a minute past: a gateway cut off from the broker, an outbox relay that published
    late), and the socket closes itself first: its connection's queue still runs. The gateway
    keeps an ended session an hour past its `until` for such queues. Until the forty-ninth session
    it forgot a session at its `until`, took such an announcement only to close sockets, and every
    queued command ran (a review); with an announcement in time, what was still queued ran once
    the `until` had passed."""
    def disconnect_then_announce(acc: Any, disconnect: Callable[[], None]) -> None:
        disconnect()
        announce_late_revocation(acc, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 60)))

    count = queued_commands_that_ran(account, disconnect_then_announce)
    assert count <= 5, f"{count} of the queued commands ran after the session ended"
