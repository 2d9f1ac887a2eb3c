"""The auth REST routes of the gateway, as docs/auth.md specifies them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import uuid
from typing import Any

import pytest
import requests

from e2e_support import (
    BIN_DIR,
    Api,
    assert_error,
    assert_status,
    assert_token_pair,
    assert_user_shape,
    do_register,
    psql,
    scrape_metric,
    services,
    stop_process,
    unique_name,
    wait_until_ready,
    within_one_login_window,
)

MAX_BODY = 64 * 1024


def refresh(api: Api, token: str) -> requests.Response:
    return api.post("/api/token/refresh", {"refreshToken": token})


def logout(api: Api, token: str) -> requests.Response:
    return api.post("/api/logout", {"refreshToken": token})


def me(api: Api, token: str) -> requests.Response:
    return api.get("/api/users/me", token=token)


# --- POST /api/users ----------------------------------------------------------------------------


def test_register_returns_201_with_lowercased_username_and_email(api):
    name = unique_name("E2E_Mixed.")
    resp = api.post(
        "/api/users",
        {"username": name, "email": f"  {name}@E2E.Example.COM ", "password": "correct horse 1"},
    )
    assert_status(resp, 201)
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    user = resp.json()["user"]
    assert_user_shape(user, with_email=True)
    assert user["username"] == name.lower()
    assert user["email"] == f"{name.lower()}@e2e.example.com"
    assert user["displayName"] == name.lower()  # defaults to the (lowercased) username


def test_register_trims_display_name(register):
    reg = register(display_name="  Ada Lovelace  ")
    assert reg.user["displayName"] == "Ada Lovelace"


def test_register_ignores_unknown_fields(register):
    chosen_id = str(uuid.uuid4())
    reg = register(isAdmin=True, id=chosen_id)
    assert "isAdmin" not in reg.user
    assert reg.id != chosen_id


def test_register_duplicate_username_is_409(api, register):
    first = register()
    resp = api.post(
        "/api/users",
        {"username": first.username.upper(), "email": f"other-{first.username}@e2e.example.com", "password": "password123"},
    )
    assert_error(resp, 409, "conflict")


def test_register_duplicate_email_case_insensitive_is_409(api, register):
    first = register()
    resp = api.post(
        "/api/users",
        {"username": unique_name(), "email": first.email.upper(), "password": "password123"},
    )
    assert_error(resp, 409, "conflict")


def test_registering_a_taken_name_or_address_hashes_no_password(api, register):
    """A registration asks whether its username and email are free before it hashes the
    password: until the forty-fourth session each 409 cost a bcrypt hash on the threads that
    logins share, and a client repeating one kept logins waiting (a review)."""
    admin = f"http://127.0.0.1:{os.environ.get('AUTH_ADMIN_PORT', '9101')}"
    first = register()
    before = scrape_metric(admin, "password_hashes_total")
    for body in ({"username": first.username, "email": f"x-{first.username}@e2e.example.com", "password": "password123"},
                 {"username": unique_name(), "email": first.email, "password": "password123"}):
        for _ in range(3):
            assert_error(api.post("/api/users", body), 409, "conflict")
    assert scrape_metric(admin, "password_hashes_total") == before


@pytest.mark.parametrize(
    "password",
    ["short7!", "", "x" * 129, "\U0001f44d" * 7],
    ids=["7-chars", "empty", "129-chars", "7-emoji"],
)
def test_register_weak_password_is_422(api, password):
    name = unique_name()
    resp = api.post("/api/users", {"username": name, "email": f"{name}@e2e.example.com", "password": password})
    assert_error(resp, 422, "invalid_argument")


def test_register_password_length_counts_unicode_scalars(register):
    # 8 scalars (4 graphemes: thumbs up + skin tone) is a valid length; 128 ASCII too.
    register(password="\U0001f44d\U0001f3fd" * 4)
    register(password="p" * 128)


def test_a_password_typed_in_nfd_or_nfc_is_one_password(api, register):
    """`é` as one code point (most keyboards) or as `e` and a combining accent (macOS)."""
    composed, decomposed = "caf\u00e9-secret-1", "cafe\u0301-secret-1"
    reg = register(password=decomposed)
    assert_status(api.post("/api/login", {"login": reg.username, "password": composed}), 200)
    assert_status(api.post("/api/login", {"login": reg.username, "password": decomposed}), 200)
    assert_error(api.post("/api/login", {"login": reg.username, "password": "cafe-secret-1"}), 401, "unauthorized")


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign.example.com",
        "two@at@example.com",
        "@example.com",
        "user@localhost",
        "user@",
        "",
        "u" * 245 + "@example.com",  # 257 characters
        "a@b..c",
        "a@.b.c",
        "zero\u200bwidth@example.com",
        "over\u202eride@example.com",
        "bom\ufeff@example.com",
    ],
    ids=["no-at", "two-at", "empty-local", "no-dot-domain", "empty-domain", "empty", "too-long", "empty-label",
         "leading-dot", "zero-width-space", "bidi-override", "bom"],
)
def test_register_bad_email_is_422(api, email):
    name = unique_name()
    resp = api.post("/api/users", {"username": name, "email": email, "password": "password123"})
    assert_error(resp, 422, "invalid_argument")


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 33, "has space", "dash-name", "caf\u00e9", "", "emoji\U0001f600"],
    ids=["too-short", "too-long", "space", "dash", "non-ascii", "empty", "emoji"],
)
def test_register_bad_username_is_422(api, username):
    resp = api.post(
        "/api/users",
        {"username": username, "email": f"{uuid.uuid4().hex[:12]}@e2e.example.com", "password": "password123"},
    )
    assert_error(resp, 422, "invalid_argument")


BAD_DISPLAY_NAMES = {
    "blank": "   ",
    "empty": "",
    "65-chars": "d" * 65,
    "only-a-byte-order-mark": "\ufeff",
    "only-zero-width": "\u200b\u200d",
    "right-to-left-override": "evil\u202egnp.exe",
    "isolate": "\u2067name\u2069",
}


@pytest.mark.parametrize("display_name", BAD_DISPLAY_NAMES.values(), ids=BAD_DISPLAY_NAMES.keys())
def test_register_bad_display_name_is_422(api, display_name):
    name = unique_name()
    resp = api.post(
        "/api/users",
        {"username": name, "email": f"{name}@e2e.example.com", "password": "password123", "displayName": display_name},
    )
    assert_error(resp, 422, "invalid_argument")


@pytest.mark.parametrize("raw", ["not json", '{"username": "abc",', ""], ids=["text", "truncated", "empty"])
def test_register_body_not_json_is_400(api, raw):
    resp = api.request("POST", "/api/users", data=raw.encode(), headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_argument")


@pytest.mark.parametrize(
    "field,value",
    [("username", 123), ("email", ["x@e2e.example.com"]), ("password", 12345678), ("displayName", 5)],
    ids=["username-number", "email-array", "password-number", "displayName-number"],
)
def test_register_wrong_field_type_is_400(api, field, value):
    name = unique_name()
    body = {"username": name, "email": f"{name}@e2e.example.com", "password": "password123", field: value}
    assert_error(api.post("/api/users", body), 400, "invalid_argument")


@pytest.mark.parametrize("body", [["e2e_user", "password123"], "e2e_user", 42, None], ids=["array", "string", "number", "null"])
def test_register_body_not_an_object_is_400(api, body):
    resp = api.request("POST", "/api/users", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_argument")


@pytest.mark.parametrize("password", ["<absent>", None], ids=["absent", "null"])
def test_register_missing_password_is_invalid_argument(api, password):
    # docs/auth.md does not say 400 or 422 for a missing (or null) required field; either is
    # invalid_argument.
    name = unique_name()
    body = {"username": name, "email": f"{name}@e2e.example.com"}
    if password is None:
        body["password"] = None
    resp = api.post("/api/users", body)
    assert resp.status_code in (400, 422), resp.text
    assert_error(resp, resp.status_code, "invalid_argument")


# --- body size limit (64 KiB) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/api/users"),
        ("POST", "/api/login"),
        ("POST", "/api/token/refresh"),
        ("POST", "/api/logout"),
        ("PATCH", "/api/users/{id}"),
    ],
)
def test_body_over_64_kib_is_413(api, reader, method, path):
    token = None
    if "{id}" in path:
        acc = reader
        path, token = path.replace("{id}", acc.id), acc.access
    body = json.dumps({"displayName": "x", "pad": "p" * (MAX_BODY + 1024)}).encode()
    resp = api.request(method, path, data=body, token=token, headers={"Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


def test_chunked_body_over_64_kib_is_413(api):
    # No Content-Length: the limit must hold while the body streams in.
    def chunks():
        yield b'{"username": "chunked_user", "pad": "'
        for _ in range(20):
            yield b"p" * 4096
        yield b'"}'

    resp = api.request("POST", "/api/users", data=chunks(), headers={"Content-Type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


def test_body_of_exactly_64_kib_is_accepted(api):
    name = unique_name()
    body = {"username": name, "email": f"{name}@e2e.example.com", "password": "password123", "pad": ""}
    size = len(json.dumps(body).encode())
    body["pad"] = "p" * (MAX_BODY - size)
    raw = json.dumps(body).encode()
    assert len(raw) == MAX_BODY
    resp = api.request("POST", "/api/users", data=raw, headers={"Content-Type": "application/json"})
    assert_status(resp, 201)


# --- POST /api/login ----------------------------------------------------------------------------


def test_login_by_username(api, register):
    reg = register()
    resp = api.post("/api/login", {"login": reg.username, "password": reg.password})
    assert_status(resp, 200)
    body = resp.json()
    assert_token_pair(body, reg.id)
    assert body["tokenType"] == "Bearer"
    assert body["user"]["email"] == reg.email


def test_login_ignores_unknown_fields_of_any_type(api, register):
    """Unknown request fields are ignored (protocol.md). `clientAddress` is one to a client, though
    the gateway hands auth a field of that name (the address it saw): until the forty-third
    session the gateway decoded the client's body as that request, and a number there was 400."""
    reg = register()
    for extra in ({"clientAddress": 5}, {"clientAddress": "10.0.0.1", "remember": True}):
        resp = api.post("/api/login", {"login": reg.username, "password": reg.password, **extra})
        assert_status(resp, 200)
        assert_token_pair(resp.json(), reg.id)


def test_api_responses_are_not_stored_by_caches(api, register):
    """Tokens, the caller's email and conversations: `Cache-Control: no-store` on every /api
    response, errors included (RFC 6749 section 5.1 for the token responses)."""
    reg = register()
    login = api.post("/api/login", {"login": reg.username, "password": reg.password})
    assert_status(login, 200)
    tokens = login.json()
    refreshed = api.post("/api/token/refresh", {"refreshToken": tokens["refreshToken"]})
    me = api.get("/api/users/me", headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    refused = api.post("/api/login", {"login": reg.username, "password": "wrong password"})
    # Errors a route throws are made into responses outside the middleware chain: until the
    # forty-ninth session they went without the header.
    unknown = api.get(f"/api/users/{uuid.uuid4()}", headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    no_route = api.get("/api/no-such-route")
    assert (unknown.status_code, no_route.status_code) == (404, 404)
    for resp in (login, refreshed, me, refused, unknown, no_route):
        assert resp.headers.get("Cache-Control") == "no-store", (resp.request.url, resp.status_code, resp.headers)


def test_login_by_email(api, register):
    reg = register()
    resp = api.post("/api/login", {"login": reg.email, "password": reg.password})
    assert_status(resp, 200)
    assert_token_pair(resp.json(), reg.id)


def test_an_email_is_one_address_in_either_unicode_form(api):
    """`josé` typed as one code point (NFC, what most keyboards send) or as `e` and a combining
    accent (NFD, what macOS may send) is one address: stored in NFC, taken once, and logged in by
    either form."""
    local = f"jos{uuid.uuid4().hex[:8]}"
    decomposed, composed = f"{local}e\u0301@example.com", f"{local}\u00e9@example.com"
    name = unique_name()
    created = api.post("/api/users", {"username": name, "email": decomposed, "password": "password123"})
    assert_status(created, 201)
    assert created.json()["user"]["email"] == composed
    again = api.post("/api/users", {"username": unique_name(), "email": composed, "password": "password123"})
    assert_error(again, 409, "conflict")
    for form in (composed, decomposed, composed.upper()):
        assert_status(api.post("/api/login", {"login": form, "password": "password123"}), 200)


def test_login_wrong_password_is_401(api, register):
    reg = register()
    resp = api.post("/api/login", {"login": reg.username, "password": reg.password + "x"})
    assert_error(resp, 401, "unauthorized")


def test_login_unknown_user_is_401_with_same_message_as_wrong_password(api, register):
    reg = register()
    wrong = assert_error(api.post("/api/login", {"login": reg.username, "password": "wrong-password"}), 401, "unauthorized")
    unknown = assert_error(
        api.post("/api/login", {"login": unique_name("nobody_"), "password": "wrong-password"}), 401, "unauthorized"
    )
    assert wrong == unknown


def test_login_body_errors_are_400(api):
    resp = api.request("POST", "/api/login", data=b"login=a&password=b", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_argument")
    assert_error(api.post("/api/login", {"login": 42, "password": "password123"}), 400, "invalid_argument")
    for field in ("login", "password"):
        body = {"login": "someone", "password": "password123", field: None}
        message = assert_error(api.post("/api/login", body), 400, "invalid_argument")
        assert field in message, f"a null {field} is refused without naming it: {message!r}"
    for raw in ("null", "[1]"):
        resp = api.request("POST", "/api/login", data=raw.encode(), headers={"Content-Type": "application/json"})
        message = assert_error(resp, 400, "invalid_argument")
        assert "JSON object" in message, f"body {raw}: {message!r}"
    # Not JSON, though Foundation's decoder took them (a socket packet with them is refused).
    for raw in ('{"login": "someone", "password": "password123",}', '{"login": "someone", "password": "password123", "n": 012}'):
        resp = api.request("POST", "/api/login", data=raw.encode(), headers={"Content-Type": "application/json"})
        assert "not valid JSON" in assert_error(resp, 400, "invalid_argument"), raw


# --- GET /api/users/me --------------------------------------------------------------------------


def test_me_returns_user_with_email(api, account):
    acc = account()
    resp = me(api, acc.access)
    assert_status(resp, 200)
    user = resp.json()["user"]
    assert_user_shape(user, with_email=True)
    assert user["id"] == acc.id and user["email"] == acc.email and user["username"] == acc.username


def test_me_without_token_is_401(api):
    assert_error(api.get("/api/users/me"), 401, "unauthorized")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer ", "Bearer a.b.c", "Basic dXNlcjpwYXNzd29yZA==", "garbage"],
    ids=["garbage", "empty", "three-segments", "basic", "no-scheme"],
)
def test_me_with_bad_authorization_is_401(api, authorization):
    resp = api.get("/api/users/me", headers={"Authorization": authorization})
    assert_error(resp, 401, "unauthorized")


# --- PATCH /api/users/:id -----------------------------------------------------------------------


def test_patch_own_display_name(api, account):
    acc = account()
    resp = api.patch(f"/api/users/{acc.id}", {"displayName": "  New Name  "}, token=acc.access)
    assert_status(resp, 200)
    user = resp.json()["user"]
    assert_user_shape(user, with_email=True)
    assert user["id"] == acc.id and user["displayName"] == "New Name" and user["email"] == acc.email
    assert me(api, acc.access).json()["user"]["displayName"] == "New Name"


@pytest.mark.parametrize("display_name", BAD_DISPLAY_NAMES.values(), ids=BAD_DISPLAY_NAMES.keys())
def test_patch_bad_display_name_is_422(api, account, display_name):
    acc = account()
    resp = api.patch(f"/api/users/{acc.id}", {"displayName": display_name}, token=acc.access)
    assert_error(resp, 422, "invalid_argument")


def test_patch_wrong_types_is_400(api, account):
    acc = account()
    resp = api.patch(f"/api/users/{acc.id}", {"displayName": 5}, token=acc.access)
    assert_error(resp, 400, "invalid_argument")
    resp = api.request(
        "PATCH", f"/api/users/{acc.id}", data=b"{not json", token=acc.access, headers={"Content-Type": "application/json"}
    )
    assert_error(resp, 400, "invalid_argument")


def test_patch_another_user_is_403(api, account, register):
    acc = account()
    other = register()
    resp = api.patch(f"/api/users/{other.id}", {"displayName": "Hijacked"}, token=acc.access)
    assert_error(resp, 403, "forbidden")
    # Whatever the body: the account is not the caller's (it was 400 for a bad body before).
    for body in (b"{not json", b"", b'{"displayName": 5}'):
        resp = api.request(
            "PATCH", f"/api/users/{other.id}", data=body, token=acc.access, headers={"Content-Type": "application/json"}
        )
        assert_error(resp, 403, "forbidden")
    found = api.get("/api/users", params={"query": other.username, "limit": 50}, token=acc.access)
    assert_status(found, 200)
    [item] = [u for u in found.json()["items"] if u["id"] == other.id]
    assert item["displayName"] == other.user["displayName"]


def test_patch_unknown_user_is_403(api, reader):
    acc = reader
    resp = api.patch(f"/api/users/{uuid.uuid4()}", {"displayName": "Ghost"}, token=acc.access)
    assert_error(resp, 403, "forbidden")


def test_patch_without_token_is_401(api, register):
    reg = register()
    assert_error(api.patch(f"/api/users/{reg.id}", {"displayName": "Anon"}), 401, "unauthorized")


def test_password_change_needs_right_current_password(api, account, login):
    acc = account()
    path = f"/api/users/{acc.id}"
    assert_error(api.patch(path, {"password": "brand-new-password"}, token=acc.access), 403, "forbidden")
    assert_error(
        api.patch(path, {"password": "brand-new-password", "currentPassword": acc.password + "x"}, token=acc.access),
        403,
        "forbidden",
    )
    # Nothing changed: the old password still logs in, the refresh token still works.
    login(acc.username, acc.password)
    assert_status(refresh(api, acc.refresh), 200)


def test_password_change_to_invalid_password_is_422(api, account):
    acc = account()
    resp = api.patch(f"/api/users/{acc.id}", {"password": "short", "currentPassword": acc.password}, token=acc.access)
    assert_error(resp, 422, "invalid_argument")


def test_password_change_revokes_refresh_tokens(api, account, login):
    acc = account()
    second = login(acc.username, acc.password)  # a second device: another refresh family
    new_password = f"new-{uuid.uuid4().hex[:16]}"
    resp = api.patch(
        f"/api/users/{acc.id}", {"password": new_password, "currentPassword": acc.password}, token=acc.access
    )
    assert_status(resp, 200)
    assert_user_shape(resp.json()["user"], with_email=True)
    assert_error(refresh(api, acc.refresh), 401, "unauthorized")
    assert_error(refresh(api, second["refreshToken"]), 401, "unauthorized")
    login(acc.username, new_password)
    resp = api.post("/api/login", {"login": acc.username, "password": acc.password})
    assert_error(resp, 401, "unauthorized")


# --- POST /api/token/refresh and /api/logout ----------------------------------------------------


def test_refresh_rotates_and_detects_reuse(api, account, login):
    acc = account()
    other_device = login(acc.username, acc.password)

    resp = refresh(api, acc.refresh)
    assert_status(resp, 200)
    pair = resp.json()
    assert_token_pair(pair, acc.id)
    assert pair["refreshToken"] != acc.refresh
    assert_status(me(api, pair["accessToken"]), 200)

    # The spent token is refused, and that reuse revokes the whole family.
    assert_error(refresh(api, acc.refresh), 401, "unauthorized")
    assert_error(refresh(api, pair["refreshToken"]), 401, "unauthorized")

    # Another family of the same user is untouched.
    assert_status(refresh(api, other_device["refreshToken"]), 200)


def test_refresh_unknown_token_is_401(api):
    assert_error(refresh(api, secrets.token_urlsafe(32)), 401, "unauthorized")
    assert_error(refresh(api, ""), 401, "unauthorized")


def test_refresh_body_errors_are_400(api):
    resp = api.request("POST", "/api/token/refresh", data=b"nope", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_argument")
    assert_error(api.post("/api/token/refresh", {"refreshToken": 123}), 400, "invalid_argument")


def test_logout_revokes_refresh_token(api, account, login):
    acc = account()
    other_device = login(acc.username, acc.password)
    rotated = refresh(api, acc.refresh).json()
    resp = logout(api, rotated["refreshToken"])
    assert_status(resp, 204)
    assert resp.content == b""
    assert_error(refresh(api, rotated["refreshToken"]), 401, "unauthorized")
    # Logout ends one family only.
    assert_status(refresh(api, other_device["refreshToken"]), 200)


def test_logout_unknown_or_spent_token_is_204(api, account):
    assert_status(logout(api, secrets.token_urlsafe(32)), 204)
    acc = account()
    assert_status(logout(api, acc.refresh), 204)
    assert_status(logout(api, acc.refresh), 204)


def test_logout_body_not_json_is_400(api):
    resp = api.request("POST", "/api/logout", data=b"refreshToken=x", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "invalid_argument")


# --- GET /api/users?query=&limit= ---------------------------------------------------------------


def test_search_by_username_prefix_case_insensitive(api, reader, register):
    acc = reader
    prefix = unique_name("s")[:10]
    one = register(username=f"{prefix}_one")
    two = register(username=f"{prefix}_two")
    resp = api.get("/api/users", params={"query": prefix.upper(), "limit": 50}, token=acc.access)
    assert_status(resp, 200)
    items = resp.json()["items"]
    assert {one.id, two.id} <= {u["id"] for u in items}
    for item in items:
        assert_user_shape(item, with_email=False)
    limited = api.get("/api/users", params={"query": prefix, "limit": 1}, token=acc.access)
    assert_status(limited, 200)
    assert len(limited.json()["items"]) == 1


def test_search_by_display_name_prefix_case_insensitive(api, reader, register):
    acc = reader
    marker = "Qz" + uuid.uuid4().hex[:8]
    target = register(display_name=f"{marker} Lovelace")
    resp = api.get("/api/users", params={"query": marker.lower()}, token=acc.access)
    assert_status(resp, 200)
    items = resp.json()["items"]
    assert [u["id"] for u in items] == [target.id]
    assert_user_shape(items[0], with_email=False)
    assert items[0]["displayName"] == f"{marker} Lovelace"


def test_display_names_are_stored_in_nfc_and_search_finds_either_form(api, reader, register):
    marker = "Qz" + uuid.uuid4().hex[:8]
    decomposed, composed = f"{marker} Jose\u0301", f"{marker} Jos\u00e9"  # "José", two ways
    target = register(display_name=decomposed)
    assert target.user["displayName"] == composed
    for query in (composed, decomposed, f"{marker} jos\u00c9"):
        resp = api.get("/api/users", params={"query": query}, token=reader.access)
        assert_status(resp, 200)
        assert [u["id"] for u in resp.json()["items"]] == [target.id], query
    # Right-to-left text needs no formatting characters, and keeps its marks.
    arabic = register(display_name="\u0644\u064a\u0644\u0649 \u200f")
    assert arabic.user["displayName"] == "\u0644\u064a\u0644\u0649 \u200f"


def test_search_is_a_prefix_match_not_a_substring_match(api, reader, register):
    acc = reader
    tail = uuid.uuid4().hex[:10]
    register(username=f"zz{tail}")
    resp = api.get("/api/users", params={"query": tail, "limit": 50}, token=acc.access)
    assert_status(resp, 200)
    assert resp.json()["items"] == []


@pytest.mark.parametrize("limit", ["0", "51", "-1"])
def test_search_bad_limit_is_422(api, reader, limit):
    acc = reader
    resp = api.get("/api/users", params={"query": "e2e", "limit": limit}, token=acc.access)
    assert_error(resp, 422, "invalid_argument")


@pytest.mark.parametrize("limit", ["abc", "1.5"])
def test_search_limit_not_an_integer_is_400(api, reader, limit):
    """As for the thread and message lists: a wrong type is 400, out of range 422."""
    resp = api.get("/api/users", params={"query": "e2e", "limit": limit}, token=reader.access)
    assert "limit" in assert_error(resp, 400, "invalid_argument")


def test_search_query_is_form_encoded(api, reader, register):
    """`+` is a space, as `requests`, `URLSearchParams` and HTML forms write it; `%2B` is a plus."""
    marker = "Qp" + uuid.uuid4().hex[:8]
    target = register(display_name=f"{marker} Hopper")
    resp = api.get(f"/api/users?query={marker}+hop", token=reader.access)
    assert_status(resp, 200)
    assert [u["id"] for u in resp.json()["items"]] == [target.id]
    resp = api.get("/api/users", params={"query": f"{marker} Hop"}, token=reader.access)
    assert [u["id"] for u in resp.json()["items"]] == [target.id]
    resp = api.get(f"/api/users?query={marker}%2Bhop", token=reader.access)
    assert_status(resp, 200)
    assert resp.json()["items"] == []


def test_search_limit_bounds_are_accepted(api, reader):
    acc = reader
    for limit in (1, 50):
        resp = api.get("/api/users", params={"query": acc.username, "limit": limit}, token=acc.access)
        assert_status(resp, 200)
        assert [u["id"] for u in resp.json()["items"]] == [acc.id]


def test_a_user_is_found_by_id_with_the_email_only_for_oneself(api, account):
    me_, other = account(), account()
    resp = api.get(f"/api/users/{other.id}", token=me_.access)
    assert_status(resp, 200)
    user = resp.json()["user"]
    assert_user_shape(user, with_email=False)
    assert (user["id"], user["username"]) == (other.id, other.username)
    own = api.get(f"/api/users/{me_.id.upper()}", token=me_.access)
    assert_status(own, 200)
    assert own.json()["user"]["email"] == me_.email
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        assert_error(api.get(f"/api/users/{missing}", token=me_.access), 404, "not_found")
    assert_error(api.get(f"/api/users/{other.id}"), 401, "unauthorized")


def test_users_are_looked_up_by_ids_in_the_order_given(api, account):
    a, b, c = account(), account(), account()
    ids = [c.id, str(uuid.uuid4()), a.id, c.id, b.id]
    resp = api.get("/api/users", params={"ids": ",".join(ids)}, token=a.access)
    assert_status(resp, 200)
    items = resp.json()["items"]
    assert [u["id"] for u in items] == [c.id, a.id, b.id], items
    for user in items:
        assert_user_shape(user, with_email=False)
    assert_error(api.get("/api/users", params={"ids": f"{a.id},nope"}, token=a.access), 400, "invalid_argument")
    assert_error(api.get("/api/users", params={"ids": a.id, "query": "e2e"}, token=a.access), 400, "invalid_argument")
    too_many = ",".join(str(uuid.uuid4()) for _ in range(101))
    assert_error(api.get("/api/users", params={"ids": too_many}, token=a.access), 422, "invalid_argument")


def test_search_requires_bearer(api):
    assert_error(api.get("/api/users", params={"query": "e2e"}), 401, "unauthorized")
    assert_error(api.get("/api/users", params={"query": "e2e"}, token="garbage"), 401, "unauthorized")


# --- login throttling ---------------------------------------------------------------------------

MAX_FAILURES = int(os.environ.get("LOGIN_MAX_FAILURES", "5"))
WINDOW_SECONDS = int(os.environ.get("LOGIN_WINDOW_SECONDS", "300"))
MAX_RECOVERY_WAIT = 30  # seconds this suite is willing to sleep for the window to end


def fail_logins(api: Api, login_name: str, count: int) -> None:
    for i in range(count):
        resp = api.post("/api/login", {"login": login_name, "password": f"wrong-password-{i}"})
        assert_error(resp, 401, "unauthorized")


def assert_rate_limited(resp: requests.Response) -> int:
    assert_error(resp, 429, "rate_limited")
    retry_after = resp.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), f"Retry-After: {retry_after!r}"
    seconds = int(retry_after)
    assert 1 <= seconds <= WINDOW_SECONDS + 1, f"Retry-After {seconds} vs window {WINDOW_SECONDS}"
    return seconds


def test_successful_login_clears_the_failure_count(api, register, login):
    reg = register()
    fail_logins(api, reg.username, MAX_FAILURES - 1)
    login(reg.username, reg.password)
    # Had the counter not been cleared, this would be failure number MAX_FAILURES and the
    # next attempt would be throttled.
    fail_logins(api, reg.username, 1)
    login(reg.username, reg.password)


def test_login_throttled_after_max_failures(api, register):
    def throttled() -> None:
        reg = register()
        fail_logins(api, reg.username, MAX_FAILURES)
        assert_rate_limited(api.post("/api/login", {"login": reg.username, "password": reg.password}))
        assert_rate_limited(api.post("/api/login", {"login": reg.username, "password": "wrong-again"}))

    within_one_login_window(WINDOW_SECONDS, throttled)


def test_login_by_username_and_by_email_share_the_accounts_counter(api, register):
    """One account, one counter: failures by its username and by its email add up."""
    def throttled() -> None:
        reg = register()
        by_name = MAX_FAILURES // 2
        fail_logins(api, reg.username, by_name)
        fail_logins(api, reg.email.upper(), MAX_FAILURES - by_name)
        assert_rate_limited(api.post("/api/login", {"login": reg.username, "password": reg.password}))
        assert_rate_limited(api.post("/api/login", {"login": reg.email, "password": reg.password}))

    within_one_login_window(WINDOW_SECONDS, throttled)


def test_login_allowed_again_after_retry_after(api, register, login):
    if WINDOW_SECONDS > MAX_RECOVERY_WAIT:
        pytest.skip(f"LOGIN_WINDOW_SECONDS={WINDOW_SECONDS} is too long to wait for (scripts/infra.sh env sets 5)")
    def throttled() -> tuple[Any, float, int]:
        reg = register()
        fail_logins(api, reg.username, MAX_FAILURES)
        started = time.monotonic()
        return reg, started, assert_rate_limited(
            api.post("/api/login", {"login": reg.username, "password": reg.password}))

    reg, started, retry_after = within_one_login_window(WINDOW_SECONDS, throttled)
    wait = min(retry_after, WINDOW_SECONDS + 2)
    time.sleep(max(0.0, wait - (time.monotonic() - started)) + 0.5)
    login(reg.username, reg.password)


def test_the_rpc_metrics_count_requests_by_outcome(api, register):
    """`rpc_server_requests_total` has an `outcome` of `ok` or the error's code, so an
    operator sees a backend's error rate (it was `handled` for every request)."""
    admin = f"http://127.0.0.1:{os.environ.get('AUTH_ADMIN_PORT', '9101')}"

    def served(outcome: str) -> int:
        return int(scrape_metric(admin, "rpc_server_requests_total", type="auth.login.v1", outcome=outcome))

    user = register()
    before_ok, before_refused = served("ok"), served("unauthorized")
    assert_status(api.post("/api/login", {"login": user.username, "password": user.password}), 200)
    assert_error(api.post("/api/login", {"login": user.username, "password": "not the password"}), 401, "unauthorized")
    # The reply goes out before the request is counted: the count may come a moment after it.
    deadline = time.monotonic() + 10
    while not (served("ok") >= before_ok + 1 and served("unauthorized") >= before_refused + 1):
        assert time.monotonic() < deadline, (served("ok"), before_ok, served("unauthorized"), before_refused)
        time.sleep(0.1)


def test_a_password_hashed_at_another_cost_is_hashed_again_at_its_next_login(api, account):
    """Auth restarted with BCRYPT_COST 11 (the account was made at another): the first login
    hashes the password again at 11, with no session ended, and the password still works. Until
    the fortieth session an account kept its cost for good, and a wrong password for an account
    of a lower cost answered faster than one for an unknown login, which tells a prober it
    exists."""
    acc = account()
    def cost_of() -> str:
        return psql(f"SELECT substring(password_hash from '\\$2b\\$([0-9]+)\\$') FROM auth.users WHERE id = '{acc.id}'")

    assert cost_of() != "11"
    services("stop", "auth")
    env = dict(os.environ, BCRYPT_COST="11", ENV_FILE="/dev/null")
    log = open(BIN_DIR.parents[1] / ".run" / "logs" / "auth-cost-11.log", "w")
    other = subprocess.Popen([str(BIN_DIR / "auth")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(f"http://127.0.0.1:{os.environ.get('AUTH_ADMIN_PORT', '9101')}/readyz", "auth at cost 11")
        assert_status(api.post("/api/login", {"login": acc.username, "password": acc.password}), 200)
        assert cost_of() == "11"
        assert_status(me(api, acc.access), 200)  # no session ended
        assert_status(api.post("/api/login", {"login": acc.username, "password": acc.password}), 200)
    finally:
        stop_process(other)
        services("start", "auth")


def test_an_address_past_its_registrations_in_the_window_is_refused(api):
    """Auth restarted with REGISTRATIONS_PER_ADDRESS=2 (the test environment has no limit):
    two accounts from this address, then 429 with a Retry-After within the window, even with a
    `clientAddress` of the client's own in the body (only the gateway's counts). A taken name is
    still answered 409, before anything is counted."""
    psql("DELETE FROM auth.registration_counts")
    services("stop", "auth")
    env = dict(os.environ, REGISTRATIONS_PER_ADDRESS="2", REGISTRATION_WINDOW_SECONDS="600",
               ENV_FILE="/dev/null")
    log = open(BIN_DIR.parents[1] / ".run" / "logs" / "auth-registrations.log", "w")
    other = subprocess.Popen([str(BIN_DIR / "auth")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(f"http://127.0.0.1:{os.environ.get('AUTH_ADMIN_PORT', '9101')}/readyz", "auth with a limit")
        first, _ = do_register(api)
        do_register(api)
        for extra in ({}, {"clientAddress": "203.0.113.9"}):
            name = unique_name()
            resp = api.post("/api/users", {"username": name, "email": f"{name}@e2e.example.com",
                                           "password": "a password 1", **extra})
            assert_error(resp, 429, "rate_limited")
            retry_after = resp.headers.get("Retry-After", "")
            assert retry_after.isdigit() and 1 <= int(retry_after) <= 600, f"Retry-After: {retry_after!r}"
        taken = api.post("/api/users", {"username": first["username"], "email": "other@e2e.example.com",
                                        "password": "a password 1"})
        assert_error(taken, 409, "conflict")
    finally:
        stop_process(other)
        psql("DELETE FROM auth.registration_counts")
        services("start", "auth")
