"""Auth under concurrency and odd input: what docs/auth.md promises must hold when requests for
one user arrive together, and for values PostgreSQL or bcrypt cannot take as they are."""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pika
import pytest
import requests

from e2e_support import (
    GATEWAY_URL,
    Api,
    assert_error,
    assert_status,
    assert_user_shape,
    call_service,
    gateway_process,
    publish_request,
    unique_name,
    within_one_login_window,
)
from test_messaging import RABBITMQ_URI

MAX_FAILURES = int(os.environ.get("LOGIN_MAX_FAILURES", "5"))
WINDOW_SECONDS = int(os.environ.get("LOGIN_WINDOW_SECONDS", "300"))


def together(*calls: Callable[[], requests.Response]) -> list[requests.Response]:
    """Runs the calls at the same moment, each on its own connection; their responses in order."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        start.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def refresh(token: str) -> Callable[[], requests.Response]:
    return lambda: Api(GATEWAY_URL).post("/api/token/refresh", {"refreshToken": token})


def refresh_is_refused(api: Api, token: str) -> None:
    assert_error(api.post("/api/token/refresh", {"refreshToken": token}), 401, "unauthorized")


# --- the login throttle ---------------------------------------------------------------------------


@pytest.mark.skipif(WINDOW_SECONDS > 30, reason="the test waits for the throttling window to end")
def test_wrong_passwords_sent_together_are_throttled_like_one_after_another(api, register):
    attempts = MAX_FAILURES + 7  # under the per-address limit (20), which the failures count against too

    def throttled() -> Any:
        reg = register()
        calls = [
            (lambda i=i: Api(GATEWAY_URL).post("/api/login", {"login": reg.username, "password": f"wrong-{i}"}))
            for i in range(attempts)
        ]
        statuses = sorted(resp.status_code for resp in together(*calls))
        assert statuses == [401] * MAX_FAILURES + [429] * (attempts - MAX_FAILURES)
        # The right password is refused too until the window ends; then it works.
        assert_error(api.post("/api/login", {"login": reg.username, "password": reg.password}), 429, "rate_limited")
        return reg

    reg = within_one_login_window(WINDOW_SECONDS, throttled)
    time.sleep(WINDOW_SECONDS + 0.5)
    assert_status(api.post("/api/login", {"login": reg.username, "password": reg.password}), 200)


# --- revocations racing a refresh ---------------------------------------------------------------


def test_logout_racing_a_refresh_revokes_the_refreshed_token(api, account, login):
    acc = account()
    for _ in range(6):
        token = login(acc.username, acc.password)["refreshToken"]
        refreshed, logged_out = together(
            refresh(token), lambda: Api(GATEWAY_URL).post("/api/logout", {"refreshToken": token}))
        assert_status(logged_out, 204)
        if refreshed.status_code == 200:
            refresh_is_refused(api, refreshed.json()["refreshToken"])
        else:
            assert_error(refreshed, 401, "unauthorized")


def test_reuse_racing_a_refresh_revokes_the_refreshed_token(api, account, login):
    acc = account()
    for _ in range(6):
        first = login(acc.username, acc.password)["refreshToken"]
        second = api.post("/api/token/refresh", {"refreshToken": first})
        assert_status(second, 200)
        current = second.json()["refreshToken"]
        reused, refreshed = together(refresh(first), refresh(current))
        assert_error(reused, 401, "unauthorized")
        if refreshed.status_code == 200:
            refresh_is_refused(api, refreshed.json()["refreshToken"])
        refresh_is_refused(api, current)


def test_password_change_during_refreshes_revokes_the_latest_token(api, account):
    acc = account()
    password = acc.password
    for round_number in range(3):
        pair = api.post("/api/login", {"login": acc.username, "password": password})
        assert_status(pair, 200)
        latest = [pair.json()["refreshToken"]]
        stop = threading.Event()

        def keep_refreshing() -> None:
            client = Api(GATEWAY_URL)
            while not stop.is_set():
                resp = client.post("/api/token/refresh", {"refreshToken": latest[0]})
                if resp.status_code != 200:
                    return
                latest[0] = resp.json()["refreshToken"]

        refresher = threading.Thread(target=keep_refreshing)
        refresher.start()
        time.sleep(0.05)
        new_password = f"changed-{round_number}-{unique_name()}"
        resp = api.patch(
            f"/api/users/{acc.id}", {"password": new_password, "currentPassword": password}, token=acc.access)
        stop.set()
        refresher.join(timeout=30)
        assert_status(resp, 200)
        password = new_password
        refresh_is_refused(api, latest[0])


def test_two_password_changes_from_the_same_password_at_once_let_one_win(api, account):
    """Two PATCHes with the same currentPassword and different new passwords, at the same moment,
    3 times: exactly one is 200, the other 403 (its currentPassword is no longer the account's),
    and the password is the winner's. Until the fortieth session both were 200 and the later
    commit silently replaced the password the other caller had just been told was set."""
    acc = account()
    password = acc.password
    for round_number in range(3):
        token = api.post("/api/login", {"login": acc.username, "password": password}).json()["accessToken"]
        first, second = f"first-{round_number}-{unique_name()}", f"second-{round_number}-{unique_name()}"

        def change(new_password: str) -> Callable[[], requests.Response]:
            return lambda: Api(GATEWAY_URL).patch(
                f"/api/users/{acc.id}", {"password": new_password, "currentPassword": password}, token=token)

        responses = together(change(first), change(second))
        statuses = sorted(resp.status_code for resp in responses)
        assert statuses == [200, 403], [(resp.status_code, resp.text[:200]) for resp in responses]
        winner = first if responses[0].status_code == 200 else second
        loser = second if winner == first else first
        assert_error(responses[1 if winner == first else 0], 403, "forbidden")
        assert_status(api.post("/api/login", {"login": acc.username, "password": winner}), 200)
        assert_error(api.post("/api/login", {"login": acc.username, "password": loser}), 401, "unauthorized")
        password = winner


# --- values PostgreSQL or bcrypt cannot take as they are ----------------------------------------


def test_password_bytes_past_72_count(api, register):
    base = "p" * 80
    reg = register(password=base + "-right")
    assert_error(api.post("/api/login", {"login": reg.username, "password": base + "-wrong"}), 401, "unauthorized")
    assert_status(api.post("/api/login", {"login": reg.username, "password": base + "-right"}), 200)


def test_password_with_nul_counts_past_it(api, register):
    reg = register(password="\u0000pw-right-123")
    assert_error(api.post("/api/login", {"login": reg.username, "password": "\u0000pw-wrong-123"}), 401, "unauthorized")
    assert_status(api.post("/api/login", {"login": reg.username, "password": "\u0000pw-right-123"}), 200)


@pytest.mark.parametrize("login_name", ["a\u0000b", "x" * 3000, "y" * 40_000], ids=["nul", "3000-chars", "40000-chars"])
def test_login_that_cannot_name_an_account_is_401(api, login_name):
    assert_error(api.post("/api/login", {"login": login_name, "password": "whatever-123"}), 401, "unauthorized")


@pytest.mark.parametrize(
    "field, value",
    [("displayName", "a\u0000b"), ("displayName", "tab\there"), ("email", "a\u0000b@e2e.example.com")],
    ids=["display-name-nul", "display-name-tab", "email-nul"],
)
def test_register_control_characters_are_422(api, field, value):
    name = unique_name()
    body = {"username": name, "email": f"{name}@e2e.example.com", "password": "password-123", field: value}
    assert_error(api.post("/api/users", body), 422, "invalid_argument")


def test_display_name_counts_code_points(api, account):
    acc = account()
    # One character of 65 code points (counted as stored, in NFC: "b" and an acute accent do
    # not compose, where "a" and one would).
    resp = api.patch(f"/api/users/{acc.id}", {"displayName": "b" + "\u0301" * 64}, token=acc.access)
    assert_error(resp, 422, "invalid_argument")
    resp = api.patch(f"/api/users/{acc.id}", {"displayName": "e\u0301" * 32}, token=acc.access)
    assert_status(resp, 200)


def test_patch_display_name_with_nul_is_422(api, account):
    acc = account()
    resp = api.patch(f"/api/users/{acc.id}", {"displayName": "a\u0000b"}, token=acc.access)
    assert_error(resp, 422, "invalid_argument")


def test_search_query_with_nul_is_422(api, reader):
    resp = api.get("/api/users", params={"query": "a\u0000"}, token=reader.access)
    assert_error(resp, 422, "invalid_argument")


def test_patch_users_me_changes_the_caller(api, account):
    acc = account()
    resp = api.patch("/api/users/me", {"displayName": "Me Myself"}, token=acc.access)
    assert_status(resp, 200)
    user = resp.json()["user"]
    assert_user_shape(user, with_email=True)
    assert user["id"] == acc.id and user["displayName"] == "Me Myself"


@pytest.mark.skipif(WINDOW_SECONDS > 30, reason="the test waits for the throttling window to end")
def test_wrong_current_passwords_count_as_failed_logins(account):
    """Wrong `currentPassword`s count as failed logins of the account, from the client's address
    (a gateway with TRUST_PROXY=true, so that `X-Forwarded-For` names it). Past the account's
    limit, a stolen token's change from another address is 429 even with the right password,
    and so is a login from an address the account never logged in from; the owner still
    changes the password from the address they logged in from (until the fifty-seventh session
    the change carried no address and was refused too). After the window, the change passes."""
    def address() -> str:  # a /64 of its own in the documentation range, new at each run
        return f"2001:db8:{random.randrange(1 << 16):x}:{random.randrange(1 << 16):x}::1"

    with gateway_process(5087, 9187, TRUST_PROXY="true") as (base, _):
        proxied = Api(base)

        def throttled() -> Any:
            acc = account()
            home, thief = address(), address()
            login = {"login": acc.username, "password": acc.password}
            assert_status(proxied.post("/api/login", login, headers={"X-Forwarded-For": home}), 200)
            for n in range(MAX_FAILURES):
                resp = proxied.patch(
                    f"/api/users/{acc.id}", {"password": "new-password-123", "currentPassword": f"wrong-{n}"},
                    token=acc.access, headers={"X-Forwarded-For": thief})
                assert_error(resp, 403, "forbidden")
            change = {"password": "new-password-123", "currentPassword": acc.password}
            resp = proxied.patch(f"/api/users/{acc.id}", change, token=acc.access, headers={"X-Forwarded-For": thief})
            assert_error(resp, 429, "rate_limited")
            assert_error(proxied.post("/api/login", login, headers={"X-Forwarded-For": address()}), 429, "rate_limited")
            resp = proxied.patch(f"/api/users/{acc.id}", change, token=acc.access, headers={"X-Forwarded-For": home})
            assert_status(resp, 200)
            return acc

        acc = within_one_login_window(WINDOW_SECONDS, throttled)
        time.sleep(WINDOW_SECONDS + 0.5)
        resp = proxied.patch(
            f"/api/users/{acc.id}", {"password": "new-password-456", "currentPassword": "new-password-123"},
            token=acc.access, headers={"X-Forwarded-For": address()})
        assert_status(resp, 200)


def test_a_login_racing_a_password_change_keeps_no_session_past_it(api, account):
    """A login checked against the old password while the password changes: either it gets no
    session (401), or the change revokes the session it got; never a session that outlives it."""
    acc = account()
    password = acc.password
    for round_number in range(3):
        new_password = f"raced-{round_number}-{unique_name()}"
        change = lambda: Api(GATEWAY_URL).patch(  # noqa: E731
            f"/api/users/{acc.id}", {"password": new_password, "currentPassword": password}, token=acc.access)
        old_login = lambda: Api(GATEWAY_URL).post(  # noqa: E731
            "/api/login", {"login": acc.username, "password": password})
        changed, logged_in = together(change, old_login)
        assert_status(changed, 200)
        if logged_in.status_code == 200:
            refresh_is_refused(api, logged_in.json()["refreshToken"])
        else:
            assert_error(logged_in, 401, "unauthorized")
        password = new_password


# --- a refresh request delivered twice ----------------------------------------------------------


def test_a_refresh_request_delivered_again_answers_with_a_token_that_works_and_revokes_nothing(
        api, account, login):
    """RPC requests are delivered at least once: the broker redelivers one whose ack a lost
    connection took, and a publisher republishes one whose confirm it did not get. The second
    copy of a refresh finds its token spent by its own first copy: that is not a reuse. Before
    the forty-first session it revoked the session the first copy had just rotated, and the
    caller, answered with the new token, was logged out.

    Until the fifty-first session the second copy answered 401 ("answered already"): a caller
    whose first answer was late, or lost with its replica's connection, got that 401 first and
    was logged out. Now a copy answers with another successor while no successor has been used;
    whichever answer the caller takes refreshes. Once one was used, a copy changes nothing."""
    acc = account()
    token = login(acc.username, acc.password)["refreshToken"]
    request_id = str(uuid.uuid4())
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        replies = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()

        def deliver(copy: int) -> dict[str, Any]:
            publish_request(channel, "auth", "auth.refresh.v1", {"refreshToken": token}, reply_to=replies,
                            expiration_ms=10_000, request_id=request_id, correlation_id=f"copy-{copy}")
            # One after the other, as a redelivery comes after the first copy's work.
            try:
                for _method, _properties, reply in channel.consume(replies, auto_ack=True, inactivity_timeout=15):
                    assert reply is not None, f"no reply to copy {copy}"
                    return json.loads(reply)
            finally:
                channel.cancel()
            raise AssertionError("unreachable")

        first, second = deliver(0), deliver(1)
        assert first["ok"] is True, first
        assert second["ok"] is True, second
        assert first["data"]["refreshToken"] != second["data"]["refreshToken"]
        # The caller took the second answer: it refreshes.
        refreshed = refresh(second["data"]["refreshToken"])()
        assert_status(refreshed, 200)
        # Its answer was used: a copy now changes nothing.
        third = deliver(2)
        assert third["ok"] is False and third["error"]["code"] == "unauthorized", third
    finally:
        connection.close()
    assert_status(refresh(refreshed.json()["refreshToken"])(), 200)


def test_a_successor_answered_to_a_copy_the_caller_did_not_take_is_a_reuse_once_another_was_used(
        api, account, login):
    """The answer to a copy of a refresh that the caller did not take reached no one; once the
    caller uses the one it took, the other is superseded, and presenting it is a reuse, which
    ends the session (the session does not split into two chains of tokens; a review)."""
    acc = account()
    token = login(acc.username, acc.password)["refreshToken"]
    request_id = str(uuid.uuid4())
    answers = [call_service("auth", "auth.refresh.v1", {"refreshToken": token}, waiting_ms=10_000,
                            request_id=request_id)
               for _ in range(2)]
    assert all(answer is not None and answer["ok"] is True for answer in answers), answers
    taken, other = (answer["data"]["refreshToken"] for answer in answers)
    refreshed = refresh(taken)()
    assert_status(refreshed, 200)
    refresh_is_refused(api, other)
    refresh_is_refused(api, refreshed.json()["refreshToken"])


def test_a_refresh_too_close_to_its_deadline_is_unavailable_and_spends_nothing(api, account, login):
    """A refresh checks, right before its commit, that its caller will still be waiting for the
    answer (half a second at least); if not, it rolls back and answers `unavailable`, safe to
    retry, and the retry rotates the same token. A caller that waits 450 ms is such a caller.
    Until the forty-third session the check's error came wrapped by the transaction and was
    answered `internal` (500)."""
    acc = account()
    token = login(acc.username, acc.password)["refreshToken"]
    answer = call_service("auth", "auth.refresh.v1", {"refreshToken": token}, waiting_ms=450)
    assert answer is not None, "no answer within 20 s"
    assert answer["ok"] is False and answer["error"]["code"] == "unavailable", answer
    # Nothing was spent: the same token refreshes, and is not taken for a reuse.
    assert_status(refresh(token)(), 200)
