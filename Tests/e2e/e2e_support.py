"""Helpers shared by the e2e tests: the HTTP client, error-shape assertions, JWT pieces, waiting on queues."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

import engineio
import pytest
import requests
import socketio
from engineio import packet as eio_packet

T = TypeVar("T")

GATEWAY_URL = os.environ.get("GATEWAY_URL", "http://127.0.0.1:5000").rstrip("/")
RABBITMQ_URI = os.environ.get("RABBITMQ_URI", "amqp://guest:guest@127.0.0.1:5673/%2f")
ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("MESSENGER_BIN_DIR", ROOT / ".build" / "debug"))
SERVICES = ROOT / "scripts" / "services.sh"
TIMEOUT = float(os.environ.get("E2E_HTTP_TIMEOUT", "15"))

JWT_ISSUER = os.environ.get("JWT_ISSUER", "messenger-auth")
JWT_AUDIENCE = os.environ.get("JWT_AUDIENCE", "messenger")

ERROR_CODES = {
    "invalid_argument",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "payload_too_large",
    "rate_limited",
    "unavailable",
    "internal",
}

TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
USERNAME_RE = re.compile(r"^[a-z0-9_.]{3,32}$")
BASE64URL_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class Api:
    """A thin `requests` wrapper bound to the gateway's base URL."""

    def __init__(self, base_url: str = GATEWAY_URL) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return self.base_url + path

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
    ) -> requests.Response:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
            h.setdefault("Content-Type", "application/json")
        return self.session.request(method, self.url(path), data=data, headers=h, params=params, timeout=TIMEOUT)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, json_body=body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.request("PATCH", path, json_body=body, **kw)


def describe(resp: requests.Response) -> str:
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code} {resp.text[:500]!r}"


def assert_status(resp: requests.Response, status: int) -> None:
    assert resp.status_code == status, f"expected {status}: {describe(resp)}"


def assert_error(resp: requests.Response, status: int, code: str) -> str:
    """Asserts an error response `{"error": {"code", "message"}}` with this status and code;
    returns the message."""
    assert code in ERROR_CODES
    assert_status(resp, status)
    assert resp.headers.get("Content-Type", "").startswith("application/json"), describe(resp)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), describe(resp)
    err = body["error"]
    assert err.get("code") == code, describe(resp)
    assert isinstance(err.get("message"), str) and err["message"].strip(), describe(resp)
    return err["message"]


def assert_user_shape(user: Any, *, with_email: bool) -> None:
    """A `User`: id (UUID), username, displayName, createdAt; email only when `with_email`."""
    assert isinstance(user, dict), user
    uuid.UUID(user["id"])
    assert USERNAME_RE.match(user["username"]), user
    assert isinstance(user["displayName"], str) and 1 <= len(user["displayName"]) <= 64, user
    assert TIMESTAMP_RE.match(user["createdAt"]), user
    if with_email:
        assert isinstance(user.get("email"), str) and "@" in user["email"], user
    else:
        assert "email" not in user, user
    for key in user:
        assert "password" not in key.lower() and "hash" not in key.lower(), user


def assert_token_pair(body: Any, user_id: str | None = None) -> None:
    """The login / refresh response: accessToken, refreshToken, tokenType Bearer, expiresIn, user."""
    assert isinstance(body, dict), body
    assert isinstance(body.get("accessToken"), str) and body["accessToken"].count(".") == 2, body
    refresh = body.get("refreshToken")
    assert isinstance(refresh, str) and len(refresh) >= 43 and BASE64URL_RE.match(refresh), body
    assert body.get("tokenType") == "Bearer", body
    expires_in = body.get("expiresIn")
    assert isinstance(expires_in, int) and not isinstance(expires_in, bool) and expires_in > 0, body
    assert_user_shape(body.get("user"), with_email=True)
    if user_id is not None:
        assert body["user"]["id"] == user_id, body


def unique_name(prefix: str = "e2e_") -> str:
    """A fresh username matching ^[a-z0-9_.]{3,32}$."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# --- JWT pieces ---------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def jwt_split(token: str) -> tuple[dict[str, Any], dict[str, Any], str, str, str]:
    """(header, claims, header segment, claims segment, signature segment)."""
    h, p, s = token.split(".")
    return json.loads(b64url_decode(h)), json.loads(b64url_decode(p)), h, p, s


# --- users --------------------------------------------------------------------------------------


def do_register(
    api: Api,
    username: str | None = None,
    email: str | None = None,
    password: str | None = None,
    display_name: str | None = None,
    **extra: Any,
) -> tuple[dict[str, Any], str]:
    """POST /api/users with fresh defaults; asserts 201 and the user's shape; (user, password)."""
    username = username or unique_name()
    email = email or f"{username.lower()}@e2e.example.com"
    password = password or f"pw-{uuid.uuid4().hex[:16]}"
    body: dict[str, Any] = {"username": username, "email": email, "password": password, **extra}
    if display_name is not None:
        body["displayName"] = display_name
    resp = api.post("/api/users", body)
    assert_status(resp, 201)
    user = resp.json()["user"]
    assert_user_shape(user, with_email=True)
    return user, password


def do_login(api: Api, login: str, password: str) -> dict[str, Any]:
    """POST /api/login; asserts 200 and the token pair's shape; the body."""
    resp = api.post("/api/login", {"login": login, "password": password})
    assert_status(resp, 200)
    body = resp.json()
    assert_token_pair(body)
    return body


# --- the login throttle's window ------------------------------------------------------------


def within_one_login_window(window_seconds: float, scenario: Callable[[], T], tries: int = 3) -> T:
    """Runs `scenario`, a check of the login throttle that starts from a fresh login name, until a
    run passes, or fails within `window_seconds` of its start, and returns what it returned.

    The throttle counts failures in fixed windows that start at the first one. A run slower than
    the window (a loaded machine: bcrypt at cost 12 takes a quarter of a second when idle) can see
    its window end and the count start again, which is the throttle working, so its failed
    assertion proves nothing and the scenario runs again. After `tries` such runs the test is
    skipped with their durations: a slow machine, not a finding."""
    durations: list[float] = []
    for _ in range(tries):
        started = time.monotonic()
        try:
            return scenario()
        except AssertionError:
            took = time.monotonic() - started
            if took < window_seconds:
                raise
            durations.append(took)
    pytest.skip(f"{tries} runs each took longer than the {window_seconds} s login window: "
                + ", ".join(f"{d:.1f} s" for d in durations))


# --- waiting on queues --------------------------------------------------------------------------


def wait_for(source: queue.Queue, predicate: Callable[[Any], bool], timeout: float, seen: list[Any] | None = None) -> Any:
    """Takes items off `source` until one satisfies `predicate` and returns it; None when none
    did within `timeout` seconds. Every item taken (the match included) is appended to `seen`
    when given, so that callers can look at what else arrived."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            item = source.get(timeout=remaining)
        except queue.Empty:
            return None
        if seen is not None:
            seen.append(item)
        if predicate(item):
            return item
    return None


def not_ready(readyz_url: str, timeout: float = 60, process: subprocess.Popen | None = None) -> str | None:
    """None once `readyz_url` answers 200 (polled up to `timeout` seconds), else what it last
    said, or that `process` (the service being waited for, when the test started it) exited."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return f"the process exited with {process.returncode}"
        try:
            resp = requests.get(readyz_url, timeout=2)
            if resp.status_code == 200:
                return None
            last = f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            last = repr(exc)
        time.sleep(0.2)
    return f"{readyz_url} not ready within {timeout:.0f} s ({last})"


def stop_process(process: subprocess.Popen | None, timeout: float = 40) -> None:
    """SIGTERM to a process a test started (by its pid), SIGKILL if it has not exited within
    `timeout` seconds (a service's graceful stop takes up to its shutdown timeout, 20 s, plus
    closing its broker connection): left running, it would hold its ports past the test run."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def wait_until_ready(readyz_url: str, what: str, timeout: float = 60) -> None:
    """Returns once `readyz_url` answers 200; else fails the test, naming `what`."""
    problem = not_ready(readyz_url, timeout)
    if problem:
        import pytest  # only the tests need it, not every importer of this module

        pytest.fail(f"{what}: {problem}")


@contextlib.contextmanager
def gateway_process(port: int, admin_port: int, *, ready: bool = True, unset: tuple[str, ...] = (), **settings: str):
    """Another gateway process on `port`, with `settings` over the environment and `unset`'s
    variables taken out of it; yields its URL and the process, once it is ready (or only alive,
    without `ready`), and stops it afterwards."""
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env.update(PORT=str(port), GATEWAY_ADMIN_PORT=str(admin_port), ENV_FILE="/dev/null", **settings)
    process = subprocess.Popen([str(BIN_DIR / "socket-gateway")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        probe = "readyz" if ready else "healthz"
        wait_until_ready(f"http://127.0.0.1:{admin_port}/{probe}", f"the gateway on port {port}")
        yield f"http://127.0.0.1:{port}", process
    finally:
        stop_process(process)


# --- the database -------------------------------------------------------------------------------


DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5433/messenger")


def psql(sql: str) -> str:
    """One statement through psql against DATABASE_URL; its output, unaligned."""
    done = subprocess.run(["psql", DATABASE_URL, "-Atc", sql], check=True, capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def publish_request(channel: Any, service: str, type_: str, data: Any, *, reply_to: str, expiration_ms: int,
                    actor: str | None = None, request_id: str | None = None, correlation_id: str = "e2e") -> str:
    """Publishes one RPC request straight to `service` on a pika channel in confirm mode, as
    another service's RPC client would (an envelope on `messenger.rpc`, mandatory, the caller's
    wait as its `expiration`); its id (`request_id`, or a new one)."""
    import pika  # only the tests that talk to the broker need it
    request_id = request_id or str(uuid.uuid4())
    envelope: dict[str, Any] = {
        "type": type_, "id": request_id,
        "occurredAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": data,
    }
    if actor is not None:
        envelope["actorId"] = actor
    channel.basic_publish(
        "messenger.rpc", service, json.dumps(envelope).encode(),
        pika.BasicProperties(content_type="application/json", message_id=request_id, correlation_id=correlation_id,
                             reply_to=reply_to, type=type_, expiration=str(expiration_ms)),
        mandatory=True)
    return request_id


def call_service(service: str, type_: str, data: Any, *, waiting_ms: int, actor: str | None = None,
                 request_id: str | None = None) -> Any:
    """One RPC request sent straight to `service` (``publish_request``) by a caller that waits
    `waiting_ms` (its `expiration`); the decoded answer, or None after 20 s without one."""
    import pika  # only the tests that talk to the broker need it
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        replies = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        publish_request(channel, service, type_, data, reply_to=replies, expiration_ms=waiting_ms, actor=actor,
                        request_id=request_id)
        answer = None
        for _method, properties, reply in channel.consume(replies, auto_ack=True, inactivity_timeout=20):
            answer = json.loads(reply_bodies(properties, reply)[0]) if reply is not None else None
            break
        channel.cancel()
        return answer
    finally:
        connection.close()


def reply_bodies(properties: Any, body: bytes) -> list[bytes]:
    """The replies an RPC reply message carries: itself, or the items of a MessageBatch (format
    byte 1, then per item a 16-bit correlation id, a 16-bit type and a 32-bit body, each with its
    big-endian length; docs/foundation.md)."""
    if properties.type != "rpc.batch.v1.reply":
        return [body]
    assert body[0] == 1, body[:1]
    items, at = [], 1
    while at < len(body):
        for width in (2, 2):
            length = int.from_bytes(body[at:at + width], "big")
            at += width + length
        length = int.from_bytes(body[at:at + 4], "big")
        items.append(body[at + 4:at + 4 + length])
        at += 4 + length
    return items


def services(command: str, *names: str, check: bool = True) -> str:
    """`scripts/services.sh stop <names>` or `start <config> <names>` (which waits for /readyz);
    returns its output, or fails the test with it when `check`."""
    argv = ["bash", str(SERVICES), command] + ([BIN_DIR.name] if command == "start" else []) + list(names)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as exc:
        if check:
            pytest.fail(f"{' '.join(argv[1:])} did not finish within 180 s: {exc}")
        return f"timeout: {exc}"
    output = (done.stdout + done.stderr).strip()
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(argv[1:])} exited with {done.returncode}:\n{output[-3000:]}")
    return output if done.returncode == 0 else f"exit {done.returncode}: {output[-3000:]}"


def connect_error(url: str, auth: dict[str, Any] | None, **connect: Any) -> Any:
    """The data of the CONNECT_ERROR a stock client gets when it connects to `url` with `auth`
    (its connect fails). It waits 5 s for the answer unless `wait_timeout` says otherwise
    (python-socketio's own default is 1 s): a client that gave up first hears nothing, and
    this fails."""
    errors: queue.Queue = queue.Queue()
    sio = socketio.Client(reconnection=False)
    sio.on("connect_error", lambda data: errors.put(data))
    connect.setdefault("wait_timeout", 5)
    with pytest.raises(socketio.exceptions.ConnectionError):
        sio.connect(url, auth=auth, **connect)
    return errors.get(timeout=5)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` in a Prometheus scrape whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == name or (head.startswith(name + "{") and all(f'{k}="{v}"' in head for k, v in labels.items())):
            total += float(value)
    return total


def scrape_metric(admin_url: str, name: str, **labels: str) -> float:
    """``metric`` of a service's /metrics now (its admin URL, `http://127.0.0.1:PORT`)."""
    return metric(requests.get(f"{admin_url}/metrics", timeout=5).text, name, **labels)


# --- a python-socketio client that handles events in arrival order -------------------------------


class _InOrderEngineIOClient(engineio.Client):
    """Runs the handler of each Engine.IO message on the read loop's thread, one after the
    other, instead of on a new thread per message (which may reorder them)."""

    def _receive_packet(self, pkt: Any) -> None:
        if pkt.packet_type == eio_packet.MESSAGE:
            self._trigger_event("message", pkt.data, run_async=False)
        else:
            super()._receive_packet(pkt)


class OrderedClient(socketio.Client):
    """python-socketio's Client with event handlers called in the order the packets arrived.
    Handlers must not block (they only put what arrived on a queue)."""

    def _engineio_client_class(self) -> type:
        return _InOrderEngineIOClient
