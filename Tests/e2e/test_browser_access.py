"""What browsers and stock HTTP clients rely on beyond the contract's table: CORS on the REST
routes and HEAD answered like GET (docs/auth.md, "Browsers"), and `Expect: 100-continue`
answered (docs/socketio.md, "The upgrade")."""

from __future__ import annotations

import json
import socket

import requests

from e2e_support import GATEWAY_URL, assert_error
from test_media import png, uploaded

ORIGIN = "https://chat.example.com"


def test_a_preflight_is_answered_and_every_rest_answer_names_the_allowed_origin(api, reader):
    preflight = requests.options(
        f"{GATEWAY_URL}/api/login", timeout=10,
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, authorization"})
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    allowed_headers = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert {"GET", "POST", "PATCH"} <= {m.strip() for m in preflight.headers["Access-Control-Allow-Methods"].split(",")}

    ok = requests.get(f"{GATEWAY_URL}/api/users/me", headers={"Origin": ORIGIN, "Authorization": f"Bearer {reader.access}"},
                      timeout=10)
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == "*"
    assert "retry-after" in ok.headers["Access-Control-Expose-Headers"].lower()
    # Errors too: a page must be able to read why it was refused.
    refused = requests.get(f"{GATEWAY_URL}/api/users/me", headers={"Origin": ORIGIN}, timeout=10)
    assert_error(refused, 401, "unauthorized")
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    missing = requests.get(f"{GATEWAY_URL}/api/no/such/route", headers={"Origin": ORIGIN}, timeout=10)
    assert_error(missing, 404, "not_found")
    assert missing.headers["Access-Control-Allow-Origin"] == "*"
    # Without an Origin (not a browser), nothing is added.
    assert "Access-Control-Allow-Origin" not in requests.get(f"{GATEWAY_URL}/healthz", timeout=10).headers


def test_long_polling_keeps_the_engines_own_cors():
    response = requests.get(f"{GATEWAY_URL}/socket.io/", params={"EIO": "4", "transport": "polling"},
                            headers={"Origin": ORIGIN}, timeout=10)
    assert response.status_code == 200 and response.text.startswith("0")
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers.get("Access-Control-Allow-Credentials") == "true"


def test_head_is_answered_as_get_without_a_body(api, reader):
    for path, token in (("/healthz", None), ("/api/users/me", reader.access), ("/.well-known/jwks.json", None)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        get = requests.get(f"{GATEWAY_URL}{path}", headers=headers, timeout=10)
        head = requests.head(f"{GATEWAY_URL}{path}", headers=headers, timeout=10)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["Content-Type"] == get.headers["Content-Type"], path
        assert head.headers.get("Content-Length") == str(len(get.content)), path
    assert requests.head(f"{GATEWAY_URL}/api/users/me", timeout=10).status_code == 401
    # Not on the long-polling path: a GET there opens a session.
    polling = requests.head(f"{GATEWAY_URL}/socket.io/", params={"EIO": "4", "transport": "polling"}, timeout=10)
    assert polling.status_code == 400 and polling.content == b""

    image = png(3, 2)
    url = uploaded(api, reader.access, "dot.png", image)["url"]
    url = url if url.startswith("http") else f"{GATEWAY_URL}{url}"
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Type"] == "image/png"
    assert head.headers["X-Content-Type-Options"] == "nosniff"
    assert head.headers.get("Content-Length") == str(len(image))


def test_expect_100_continue_is_answered_before_the_body():
    """curl sends `Expect: 100-continue` with any body over 1 KiB and waits a second for the
    answer before it sends the body anyway."""
    body = json.dumps({"refreshToken": "x" * 2000}).encode()
    host = GATEWAY_URL.split("//", 1)[1]
    address, port = host.split(":")
    with socket.create_connection((address, int(port)), timeout=5) as connection:
        connection.sendall(
            f"POST /api/logout HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = connection.recv(4096)
            assert chunk, "the gateway closed the connection"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        connection.sendall(body)
        final = interim.split(b"\r\n\r\n", 1)[1]
        while b"\r\n\r\n" not in final:
            chunk = connection.recv(4096)
            assert chunk, "the gateway closed the connection"
            final += chunk
        assert final.startswith(b"HTTP/1.1 204"), final
