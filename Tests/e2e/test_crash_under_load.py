"""Processes killed while messages flow (the guide's "nothing acknowledged is lost",
architecture.md's delivery guarantees, protocol.md's `create_message` idempotency and
`lastSeq` catch-up).

Four senders write to three DMs and one group of four, a few messages a second each, through
stock python-socketio clients that reconnect by themselves (with `lastSeq` in their CONNECT).
While they do, one of these happens, and the process comes back:
- delivery, messaging and the gateway, one after the other, get SIGKILL (no shutdown of any
  kind: in-flight RPCs, unconfirmed publishes, unacknowledged deliveries and open
  transactions all die with the process);
- PostgreSQL stops in immediate mode (its processes quit at once, without a checkpoint; the
  next start replays the WAL), under every service's pool;
- RabbitMQ's node gets SIGKILL (what it confirmed must be on disk).

A sender whose `create_message` gets no ack, or an `unavailable` error, sends it again with
the same `clientMessageId`, as a client should; every other error fails the test.

When the senders stop, the test requires:
- every message a sender was told was saved is in its thread's history exactly once, and no
  message the senders did not send is;
- every member of the thread got its `message_created`, live or by `sync`, with one event
  per message (a message committed once is announced once, whatever was redelivered);
- every member's seqs run from 1 without a gap, and each seq is always the same event, and
  the messages of a thread come in the thread's order;
- after a last `ack_events` from every member, each message a recipient acknowledged told its
  sender with one `message_delivered` (one event id per message and recipient).

The PostgreSQL case found two faults of postgres-nio that wedged or stopped a service
(docs/foundation.md, "PostgreSQL"). Each user has one socket; each case takes 30 to 45 s. The
module stops and starts processes with scripts/services.sh and scripts/infra.sh, and leaves
everything running and ready.

Environment: as test_delivery.py (GATEWAY_URL, MESSENGER_BIN_DIR, DELIVERY_ADMIN_PORT), and
MESSAGING_ADMIN_PORT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import socketio

from e2e_support import GATEWAY_URL, Api, not_ready
from test_delivery import DELIVERY_READY_URL, GATEWAY_READY_URL, OrderedClient, services, wait_ready
from test_messaging import short

ROOT = Path(__file__).resolve().parents[2]
PID_DIR = ROOT / ".run" / "pids"
INFRA = ROOT / "scripts" / "infra.sh"
MESSAGING_READY_URL = f"http://127.0.0.1:{os.environ.get('MESSAGING_ADMIN_PORT', '9102')}/readyz"
READY_URLS = {
    "delivery": DELIVERY_READY_URL,
    "messaging": MESSAGING_READY_URL,
    "socket-gateway": GATEWAY_READY_URL,
}

# The processes are this checkout's own (scripts/services.sh and scripts/infra.sh record their
# pids); against another deployment (compose's test profile) there is nothing here to kill.
pytestmark = pytest.mark.skipif(
    not (PID_DIR / "svc-messaging.pid").exists() or not (PID_DIR / "postgres.pid").exists(),
    reason="needs the servers and services started by scripts/infra.sh and scripts/services.sh",
)

SEND_INTERVAL = 0.12  # seconds between one sender's messages: about 8 a second each
ATTEMPT_TIMEOUT = 4.0  # seconds a sender waits for one attempt's ack before sending it again
SETTLE_TIMEOUT = 60.0  # seconds, after the senders stop, for every event to arrive
RETRYABLE = {"unavailable"}


@dataclass
class Member:
    """One user with one socket that reconnects by itself, keeping every durable event it
    receives by seq, and acknowledging them about once a second."""

    account: Any
    label: str
    events: dict[int, dict[str, Any]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sio: socketio.Client | None = None

    def contiguous(self) -> int:
        """The highest seq up to which this socket has every event."""
        with self.lock:
            seq = 0
            while seq + 1 in self.events:
                seq += 1
            return seq

    def keep(self, body: Any) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
            return
        with self.lock:
            before = self.events.setdefault(body["seq"], body)
            if before.get("eventId") != body.get("eventId"):
                self.conflicts.append(f"seq {body['seq']}: {short(before, 200)} and then {short(body, 200)}")

    def connect(self) -> None:
        sio = OrderedClient(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1.0)
        sio.on("*", lambda _event, *args: self.keep(args[0] if len(args) == 1 else None))
        # A callable: each reconnection sends the seq this socket has everything up to.
        sio.connect(
            GATEWAY_URL,
            auth=lambda: {"token": self.account.access, "lastSeq": self.contiguous()},
            transports=["websocket"],
            wait_timeout=10,
        )
        self.sio = sio

    def call(self, event: str, payload: Any, timeout: float) -> Any:
        """The ack, or None when there was none (not connected, or no answer in time)."""
        assert self.sio is not None
        try:
            return self.sio.call(event, payload, timeout=timeout)
        except socketio.exceptions.SocketIOError:
            return None

    def created(self, thread_id: str) -> list[tuple[int, str]]:
        """(seq, message id) of every `message_created` this socket kept in `thread_id`."""
        with self.lock:
            return [
                (seq, body["data"]["message"]["id"])
                for seq, body in self.events.items()
                if body.get("type") == "MESSAGE_CREATED" and body["data"]["message"]["threadId"] == thread_id
            ]

    def message_ids(self, thread_id: str) -> list[str]:
        return [message for _, message in self.created(thread_id)]

    def receipts(self) -> dict[tuple[str, str], set[str]]:
        """(message id, recipient id) -> the event ids of the `MESSAGE_DELIVERED` receipts kept."""
        found: dict[tuple[str, str], set[str]] = {}
        with self.lock:
            for body in self.events.values():
                if body.get("type") == "MESSAGE_DELIVERED":
                    key = (body["data"].get("messageId"), body["data"].get("userId"))
                    found.setdefault(key, set()).add(body.get("eventId"))
        return found

    def catch_up(self) -> None:
        """Fetches with `sync` whatever is missing after the contiguous seq (pushes are retried
        anyway; this only shortens the wait)."""
        after = self.contiguous()
        ack = self.call("sync", {"afterSeq": after, "limit": 500}, timeout=10)
        if isinstance(ack, dict) and ack.get("ok"):
            for body in ack["data"]["events"]:
                self.keep(body)


@dataclass
class Sender:
    """A member that sends to one thread until told to stop, each message until it is saved."""

    member: Member
    thread_id: str
    saved: dict[str, str] = field(default_factory=dict)  # clientMessageId -> message id
    attempts: int = 0
    failures: list[str] = field(default_factory=list)

    def run(self, stop: threading.Event, give_up: threading.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            client_id = f"crash-{self.member.label}-{n}-{uuid.uuid4().hex[:6]}"
            payload = {"threadId": self.thread_id, "clientMessageId": client_id, "body": f"{self.member.label} #{n}"}
            while True:
                self.attempts += 1
                ack = self.member.call("create_message", payload, timeout=ATTEMPT_TIMEOUT)
                if isinstance(ack, dict) and ack.get("ok") is True:
                    message = ack["data"]["message"]
                    if message.get("clientMessageId") != client_id or message.get("threadId") != self.thread_id:
                        self.failures.append(f"{client_id}: the ack names another message: {short(ack, 300)}")
                    self.saved[client_id] = message["id"]
                    break
                code = ack.get("error", {}).get("code") if isinstance(ack, dict) else None
                if ack is not None and code not in RETRYABLE:
                    self.failures.append(f"{client_id}: {short(ack, 300)}")
                    break
                if give_up.is_set():
                    self.failures.append(f"{client_id}: still not saved when the test gave up (last ack {ack!r})")
                    return
                time.sleep(0.2)
            time.sleep(SEND_INTERVAL)


def infra(*argv: str) -> None:
    """`scripts/infra.sh <argv>`; fails the test with its output when it fails."""
    done = subprocess.run(["bash", str(INFRA), *argv], capture_output=True, text=True, timeout=240)
    if done.returncode != 0:
        pytest.fail(f"infra.sh {' '.join(argv)} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")


def kill(service: str) -> None:
    """SIGKILL to the service's recorded pid; returns once the process is gone."""
    pid = int((PID_DIR / f"svc-{service}.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            break
        if state == "Z":
            break
        time.sleep(0.05)


def history(api: Api, member: Member, thread_id: str) -> list[dict[str, Any]]:
    """Every message of the thread, through REST, newest first, following the cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        path = f"/api/threads/{thread_id}/messages"
        params = {"limit": 100, **({"before": cursor} if cursor else {})}
        resp = api.get(path, token=member.account.access, params=params)
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text[:300]}"
        body = resp.json()
        items += body["items"]
        cursor = body.get("nextCursor")
        if not cursor:
            return items


class Traffic:
    """Ten users: three DMs and a group of four, each with one sender, sending until `finish`."""

    def __init__(self, account: Any) -> None:
        self.members = [Member(account(), f"u{i}") for i in range(10)]
        for member in self.members:
            member.connect()
        self.threads: list[tuple[str, list[Member]]] = []
        self.senders: list[Sender] = []
        for i in range(3):
            writer, reader = self.members[2 * i], self.members[2 * i + 1]
            thread = self.create(writer, {"type": "DM", "memberIds": [reader.account.id]})
            self.threads.append((thread, [writer, reader]))
            self.senders.append(Sender(writer, thread))
        group = self.members[6:]
        ids = [m.account.id for m in group[1:]]
        thread = self.create(group[0], {"type": "GROUP", "memberIds": ids, "title": "crash under load"})
        self.threads.append((thread, group))
        self.senders.append(Sender(group[0], thread))
        self.stop, self.give_up, self.acking = threading.Event(), threading.Event(), threading.Event()
        self.workers = [threading.Thread(target=s.run, args=(self.stop, self.give_up), daemon=True) for s in self.senders]
        self.acker = threading.Thread(target=self.acknowledge, daemon=True)
        for worker in [*self.workers, self.acker]:
            worker.start()

    @staticmethod
    def create(member: Member, payload: dict[str, Any]) -> str:
        ack = member.call("create_conversation", payload, timeout=10)
        assert isinstance(ack, dict) and ack.get("ok"), ack
        return ack["data"]["thread"]["id"]

    def acknowledge(self) -> None:
        """About once a second, each member acks what it has without a gap (errors are ignored:
        the next round acks again)."""
        acked = {id(m): 0 for m in self.members}
        while not self.acking.wait(1.0):
            for m in self.members:
                seq = m.contiguous()
                if seq > acked[id(m)] and isinstance(m.call("ack_events", {"upToSeq": seq}, timeout=3), dict):
                    acked[id(m)] = seq

    def close(self) -> None:
        self.acking.set()
        self.stop.set()
        self.give_up.set()
        for m in self.members:
            if m.sio is not None:
                try:
                    m.sio.disconnect()
                except Exception:  # noqa: BLE001 - teardown of a socket that may already be gone
                    pass

    def finish(self, api: Api) -> str:
        """Stops the senders and checks everything the module's docstring promises; returns a
        line saying how many messages were saved and how many attempts were sent again."""
        self.stop.set()
        for worker in self.workers:
            worker.join(timeout=ATTEMPT_TIMEOUT + 1)
        self.give_up.set()
        for worker in self.workers:
            worker.join(timeout=ATTEMPT_TIMEOUT + 1)
        failures = [f for s in self.senders for f in s.failures]
        assert not failures, f"sends that failed: {failures[:10]}"
        assert all(not w.is_alive() for w in self.workers), "a sender is still sending"

        # Every saved message must reach every member of its thread, live or by sync.
        wanted = {
            tid: {mid for s in self.senders if s.thread_id == tid for mid in s.saved.values()} for tid, _ in self.threads
        }
        missing = self.settle(
            lambda: {(m.label, tid): wanted[tid] - set(m.message_ids(tid)) for tid, ms in self.threads for m in ms}
        )
        assert not missing, "saved messages that never reached a member: " + short(
            {f"{k[0]} in {k[1]}": sorted(v)[:5] for k, v in missing.items()}, 1500
        )

        receipts = self.check_receipts()

        total = sum(len(s.saved) for s in self.senders)
        assert total > 50, f"only {total} messages were saved"
        for tid, ms in self.threads:
            sent = {cid: mid for s in self.senders if s.thread_id == tid for cid, mid in s.saved.items()}
            by_client_id: dict[str, list[str]] = {}
            thread_seq: dict[str, int] = {}
            for message in history(api, ms[0], tid):
                by_client_id.setdefault(message["clientMessageId"], []).append(message["id"])
                thread_seq[message["id"]] = message["seq"]
            duplicated = {cid: ids for cid, ids in by_client_id.items() if len(ids) > 1}
            assert not duplicated, f"thread {tid}: messages stored twice: {short(duplicated, 800)}"
            assert {cid: ids[0] for cid, ids in by_client_id.items()} == sent, (
                f"thread {tid}: the history differs from what the senders were told: "
                f"{len(by_client_id)} stored, {len(sent)} saved; "
                f"not stored {sorted(set(sent) - set(by_client_id))[:5]}, "
                f"never acked {sorted(set(by_client_id) - set(sent))[:5]}"
            )
            for m in ms:
                announced = m.message_ids(tid)
                twice = sorted(x for x in set(announced) if announced.count(x) > 1)
                assert not twice, f"{m.label}: messages announced under two seqs in {tid}: {twice[:5]}"
                assert set(announced) == set(sent.values()), f"{m.label}: announced messages differ from the saved ones"
                # A thread's messages reach each member in the thread's order (delivery records
                # the outbox's events in order, whatever failed on the way).
                order = [thread_seq[mid] for _, mid in sorted(m.created(tid))]
                assert order == sorted(order), f"{m.label}: messages of {tid} out of the thread's order: {order}"
        for m in self.members:
            assert not m.conflicts, f"{m.label}: one seq, two events: {m.conflicts[:3]}"
            with m.lock:
                seqs = sorted(m.events)
            assert seqs == list(range(1, len(seqs) + 1)), f"{m.label}: seqs with a gap: {seqs[:5]}...{seqs[-5:]}"
        retried = sum(s.attempts for s in self.senders) - total
        return f"{total} messages saved, {retried} attempts sent again, {receipts} receipts"

    def settle(self, missing: Callable[[], dict[Any, set[Any]]]) -> dict[Any, set[Any]]:
        """What `missing` still names (its empty sets left out) once it names nothing or
        SETTLE_TIMEOUT has passed; every member fetches what it lacks with `sync` meanwhile."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            left = {key: items for key, items in missing().items() if items}
            if not left or time.monotonic() > deadline:
                return left
            for m in self.members:
                m.catch_up()
            time.sleep(1)

    def check_receipts(self) -> int:
        """Every member acks what it has one last time; then each message it acknowledged must
        have told its sender, once (one event id), live or by `sync`. Returns how many did."""
        self.acking.set()
        self.acker.join(timeout=5)
        acked: dict[str, int] = {}
        for m in self.members:
            reply = m.call("ack_events", {"upToSeq": m.contiguous()}, timeout=10)
            assert isinstance(reply, dict) and reply.get("ok"), f"{m.label}: the last ack failed: {short(reply, 300)}"
            acked[m.label] = reply["data"]["upToSeq"]
        expected: dict[str, set[tuple[str, str]]] = {}  # sender label -> (message id, recipient id)
        for sender in self.senders:
            members = next(ms for tid, ms in self.threads if tid == sender.thread_id)
            for r in members:
                if r is sender.member:
                    continue
                for seq, message in r.created(sender.thread_id):
                    if seq <= acked[r.label]:
                        expected.setdefault(sender.member.label, set()).add((message, r.account.id))
        by_label = {m.label: m for m in self.members}
        missing = self.settle(
            lambda: {label: pairs - set(by_label[label].receipts()) for label, pairs in expected.items()}
        )
        count = sum(len(pairs) for pairs in expected.values())
        assert count > 50, f"too few acknowledged messages: {expected}"
        assert not missing, "acknowledged messages whose sender never got the receipt: " + short(
            {label: sorted(pairs)[:5] for label, pairs in missing.items()}, 1500
        )
        for m in self.members:
            twice = {key: ids for key, ids in m.receipts().items() if len(ids) > 1}
            assert not twice, f"{m.label}: one message and recipient, several receipts: {short(twice, 800)}"
        return count


def assert_all_ready(outcome: str) -> None:
    problems = [p for p in (not_ready(url) for url in READY_URLS.values()) if p]
    assert not problems, f"services not ready after the test: {problems}; services.sh said: {outcome[-2000:]}"


def test_killing_delivery_messaging_and_the_gateway_under_load_loses_and_duplicates_nothing(api, account):
    traffic = Traffic(account)
    try:
        time.sleep(3)
        for service in ("delivery", "messaging", "socket-gateway"):
            kill(service)
            time.sleep(1)
            services("start", service)
            wait_ready(READY_URLS[service])
            time.sleep(3)
        summary = traffic.finish(api)
    finally:
        traffic.close()
        # Whatever happened, leave every service running and ready for the next tests.
        outcome = services("start", "delivery", "messaging", "socket-gateway", check=False)
    assert_all_ready(outcome)
    print(f"services killed: {summary}")


@pytest.mark.parametrize("server", ["postgres", "rabbitmq"])
def test_a_crash_of_postgres_or_rabbitmq_under_load_loses_and_duplicates_nothing(api, account, server):
    traffic = Traffic(account)
    try:
        time.sleep(3)
        infra("crash", server)
        time.sleep(2)
        infra("start", server)
        for url in READY_URLS.values():
            wait_ready(url)
        time.sleep(4)
        summary = traffic.finish(api)
    finally:
        traffic.close()
        # Whatever happened, leave the server and every service running for the next tests.
        subprocess.run(["bash", str(INFRA), "start", server], capture_output=True, timeout=240)
        outcome = services("start", "delivery", "messaging", "socket-gateway", check=False)
    assert_all_ready(outcome)
    print(f"{server} crashed: {summary}")


def test_a_refresh_or_registration_answered_unavailable_during_a_database_stall_can_be_retried(api, account):
    """PostgreSQL stops for 7 s. A refresh and a registration sent meanwhile wait for it past the
    gateway's 5 s and get 503 `unavailable`, which the contract calls safe to retry. Auth must not
    commit them once the database is back: a rotation its caller never heard of made the retry a
    reuse, which ended the session (the user was logged out), and an account created after its
    caller left made the retry a 409 for the user's own name."""
    acc = account()
    name = f"stall{uuid.uuid4().hex[:10]}"
    registration = {"username": name, "email": f"{name}@example.com", "password": "password123"}
    answers: dict[str, int] = {}

    def send(what: str, path: str, body: dict) -> None:
        answers[what] = api.post(path, body).status_code

    infra("stop", "postgres")
    try:
        senders = [threading.Thread(target=send, args=("refresh", "/api/token/refresh", {"refreshToken": acc.refresh})),
                   threading.Thread(target=send, args=("register", "/api/users", registration))]
        for sender in senders:
            sender.start()
        time.sleep(7)
    finally:
        infra("start", "postgres")
    for sender in senders:
        sender.join(timeout=30)
    for url in READY_URLS.values():
        wait_ready(url)
    assert answers == {"refresh": 503, "register": 503}, answers
    time.sleep(3)  # what auth still had in hand when the database came back is done by now
    # Auth's pool may still be between its reconnection attempts (they back off while the database
    # is away): a 503 is safe to retry, as a client does.
    deadline = time.monotonic() + 30
    while (refreshed := api.post("/api/token/refresh", {"refreshToken": acc.refresh})).status_code == 503:
        assert time.monotonic() < deadline, f"the refresh was still unavailable 30 s after the restart: {refreshed.text}"
        time.sleep(0.5)
    assert refreshed.status_code == 200, refreshed.text
    assert api.get("/api/users/me", token=refreshed.json()["accessToken"]).status_code == 200
    assert api.post("/api/users", registration).status_code == 201
