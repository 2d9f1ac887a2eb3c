"""Delivery of durable events, end to end (protocol.md section 3, "Connecting", "Commands"
`ack_events` / `sync`, "Events"; the delivery service of issue 6).

What is covered: every durable event reaches every socket of every recipient as
`{eventId, seq, type, occurredAt, data}` with a per-user `seq` that starts at 1 and has no
gaps; `ack_events` (cumulative, per user, clamped) and the `message_delivered` receipts it
sends to a message's sender; `message_seen`; `sync` paging and its errors; the replay on
connect after `lastSeq` and the seam with live events; redelivery of unacknowledged events
(same eventId and seq) until acknowledged; poison messages dead-lettered to
`delivery.events.dead`; and a restart of the delivery service and of the gateway that loses
nothing. The restart test stops and starts services (scripts/services.sh) and comes last.

How events are observed: each socket is a python-socketio client whose handlers run in the
order the packets arrived (stock python-socketio runs every Engine.IO message's handler on a
thread of its own, which could reorder them on our side), with a catch-all handler feeding a
queue. A `Device` keeps everything its socket received, in arrival order. Delivery is
at-least-once: an unacknowledged event comes again after a retry delay (2 s, then 10 s, ...),
so most checks look at the first copy of each seq (as a client that drops seqs it already has)
and require every repeated copy to be the same event. The catch-up test arranges its timing so
that no retry can fall into its window, and then requires no repeat at all.

Users: every test makes its own (a fresh user's seqs start at 1); registration and login cost
about 0.5 s per user, so each test makes two or three.

Environment: GATEWAY_URL, RABBITMQ_URI, MESSENGER_BIN_DIR (its last component is the build
configuration handed to scripts/services.sh), DELIVERY_ADMIN_PORT (default 9104),
E2E_ACK_TIMEOUT, E2E_EVENT_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import subprocess
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

import pika
import pytest
import requests
import socketio

from e2e_support import BIN_DIR, GATEWAY_URL, OrderedClient, connect_error, not_ready, psql, scrape_metric, services, stop_process, wait_for, wait_until_ready  # noqa: F401 - services is shared on
from test_messaging import (
    EVENT_TIMEOUT,
    EVENTS_EXCHANGE,
    QUIET_PERIOD,
    RABBITMQ_URI,
    Peer,
    assert_message,
    assert_thread,
    assert_timestamp,
    err,
    send_pipelined,
    short,
)

DELIVERY_ADMIN_PORT = os.environ.get("DELIVERY_ADMIN_PORT", "9104")
DELIVERY_READY_URL = f"http://127.0.0.1:{DELIVERY_ADMIN_PORT}/readyz"
GATEWAY_READY_URL = f"{GATEWAY_URL}/readyz"
POISON_QUEUE = "delivery.events.dead"
USER_EVENTS_POISON_QUEUE = "messaging.users.dead"

# The default retry delays of the delivery service (DELIVERY_RETRY_DELAYS_MS=2000,10000,...),
# which the test environment keeps.
FIRST_RETRY_DELAY = 2.0
SECOND_RETRY_DELAY = 10.0
# How long a redelivery may take to show up: the first retry delay plus slack.
REDELIVERY_TIMEOUT = 11.0  # under the second retry's 12 s
# Services take a few seconds to become ready after a start.
RESTART_TIMEOUT = 60.0

# Client event name -> `type` of the durable events (protocol.md, "Events").
DURABLE_TYPES = {
    "conversation_created": "THREAD_CREATED",
    "message_created": "MESSAGE_CREATED",
    "message_updated": "MESSAGE_UPDATED",
    "bulk_message_deleted": "MESSAGES_DELETED",
    "reaction_added": "REACTION_ADDED",
    "reaction_removed": "REACTION_REMOVED",
    "attachment_added": "ATTACHMENT_ADDED",
    "message_delivered": "MESSAGE_DELIVERED",
    "message_seen": "MESSAGE_SEEN",
}
EVENT_KEYS = {"eventId", "seq", "type", "occurredAt", "data"}
RECEIPT_KEYS = {"threadId", "messageId", "userId", "at"}


# --- what a socket received ----------------------------------------------------------------------


@dataclass
class Ev:
    """One server-to-client event as a socket received it: its name, its arguments, its arrival
    number on that socket (= its index in `Device.log`) and time (monotonic)."""

    name: str
    args: tuple
    n: int
    at: float

    @property
    def durable(self) -> bool:
        return self.name in DURABLE_TYPES

    @property
    def body(self) -> dict[str, Any]:
        """The one argument `{eventId, seq, type, occurredAt, data}` (empty when not one dict)."""
        return self.args[0] if len(self.args) == 1 and isinstance(self.args[0], dict) else {}

    @property
    def seq(self) -> Any:
        return self.body.get("seq")

    @property
    def event_id(self) -> Any:
        return self.body.get("eventId")

    @property
    def type(self) -> Any:
        return self.body.get("type")

    @property
    def data(self) -> dict[str, Any]:
        data = self.body.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def message(self) -> dict[str, Any]:
        message = self.data.get("message")
        return message if isinstance(message, dict) else {}

    @property
    def thread_id(self) -> Any:
        thread = self.data.get("thread")
        if isinstance(thread, dict):
            return thread.get("id")
        return self.message.get("threadId") or self.data.get("threadId")

    @property
    def message_id(self) -> Any:
        return self.message.get("id") or self.data.get("messageId")

    def __repr__(self) -> str:
        if self.durable:
            return f"<{self.name} seq={self.seq} eventId={self.event_id} message={self.message_id}>"
        return f"<{self.name} {short(self.args, 120)}>"


@dataclass
class Device(Peer):
    """One connected socket of one user (a `Peer`, so `call`, `ok`, `refused`, `dm`, `group` and
    `send` work), with everything it received, in arrival order."""

    label: str = ""
    log: list[Ev] = field(default_factory=list, repr=False)

    @property
    def who(self) -> str:
        return f"{self.label or self.account.username} ({self.id})"

    def mark(self) -> int:
        """The position of the next event to arrive (for `since=`)."""
        self.drain()
        return len(self.log)

    def drain(self) -> None:
        """Moves what already arrived from the queue to the log."""
        while True:
            try:
                self.log.append(self.events.get_nowait())
            except queue.Empty:
                return

    def wait_for(self, predicate: Callable[[Ev], bool], what: str, timeout: float = EVENT_TIMEOUT, since: int = 0) -> Ev:
        """The first event from position `since` on that satisfies `predicate`, waiting up to
        `timeout` seconds for it; fails with what did arrive."""
        for ev in self.log[since:]:
            if predicate(ev):
                return ev
        found = wait_for(self.events, predicate, timeout, seen=self.log)
        if found is None:
            pytest.fail(f"{self.who}: no {what} within {timeout} s; received since #{since}: {self.log[since:][-40:]}")
        return found

    def gather(self, predicate: Callable[[Ev], bool], count: int, timeout: float = EVENT_TIMEOUT, since: int = 0) -> list[Ev]:
        """The events from `since` on that satisfy `predicate`, as soon as there are `count` of
        them, or what there is after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = [ev for ev in self.log[since:] if predicate(ev)]
            remaining = deadline - time.monotonic()
            if len(found) >= count or remaining <= 0:
                return found
            if wait_for(self.events, predicate, remaining, seen=self.log) is None:
                return [ev for ev in self.log[since:] if predicate(ev)]

    def collect(
        self, predicate: Callable[[Ev], bool], count: int, what: str, timeout: float = EVENT_TIMEOUT, since: int = 0
    ) -> list[Ev]:
        """Like `gather`, but fails when fewer than `count` came."""
        found = self.gather(predicate, count, timeout, since)
        if len(found) < count:
            pytest.fail(f"{self.who}: {len(found)} of {count} {what} within {timeout} s; got {found[-20:]}; "
                        f"everything since #{since}: {self.log[since:][-40:]}")
        return found

    def listen(self, seconds: float) -> None:
        """Keeps everything that arrives for `seconds` (for checks that something does NOT come)."""
        if seconds > 0:
            wait_for(self.events, lambda _ev: False, seconds, seen=self.log)
        self.drain()

    def durable(self, since: int = 0, where: Callable[[Ev], bool] | None = None) -> list[Ev]:
        self.drain()
        return [ev for ev in self.log[since:] if ev.durable and (where is None or where(ev))]

    def ack(self, up_to: Any) -> Any:
        """`ack_events {upToSeq}`; returns the ack's `upToSeq`."""
        data = self.ok("ack_events", {"upToSeq": up_to})
        value = data.get("upToSeq")
        assert isinstance(value, int) and not isinstance(value, bool), f"ack_events {up_to}: ack data {data!r}"
        return value

    def sync(self, after_seq: Any, limit: Any = None) -> dict[str, Any]:
        """`sync {afterSeq, limit?}`; asserts the reply's shape; returns `{events, hasMore}`."""
        payload: dict[str, Any] = {"afterSeq": after_seq}
        if limit is not None:
            payload["limit"] = limit
        data = self.ok("sync", payload)
        assert isinstance(data.get("events"), list), f"sync {payload}: {short(data, 600)}"
        assert isinstance(data.get("hasMore"), bool), f"sync {payload}: hasMore is not a boolean: {short(data, 600)}"
        for event in data["events"]:
            assert_event_body(event)
        return data


@pytest.fixture
def open_socket() -> Iterable[Callable[..., Device]]:
    """open_socket(account, last_seq=None, transports=["websocket"], label="") -> a connected
    Device. `last_seq` goes in the CONNECT's auth (`{token, lastSeq}`); None leaves it out.
    Every socket opened through it is closed after the test."""
    opened: list[socketio.Client] = []

    def _open(account: Any, *, last_seq: Any = None, transports: list[str] | None = None, label: str = "") -> Device:
        received: queue.Queue = queue.Queue()
        counter = itertools.count()
        sio = OrderedClient(reconnection=False)
        # Registered before connecting: the replay follows the CONNECT at once.
        sio.on("*", lambda event, *args: received.put(Ev(event, args, next(counter), time.monotonic())))
        auth: dict[str, Any] = {"token": account.access}
        if last_seq is not None:
            auth["lastSeq"] = last_seq
        sio.connect(GATEWAY_URL, auth=auth, transports=transports or ["websocket"], wait_timeout=10)
        opened.append(sio)
        return Device(account, sio, received, label=label)

    yield _open
    for sio in opened:
        try:
            sio.disconnect()
        except Exception:  # noqa: BLE001 - teardown of a socket that may already be gone
            pass


@pytest.fixture(scope="module", autouse=True)
def delivery_ready() -> None:
    """Fails this module's tests at once, with one line, when the delivery service is not ready."""
    try:
        status = requests.get(DELIVERY_READY_URL, timeout=3).status_code
        problem = "" if status == 200 else f"answered {status}"
    except requests.RequestException as exc:
        problem = str(exc)
    if problem:
        pytest.fail(f"the delivery service is not ready at {DELIVERY_READY_URL} ({problem}); DELIVERY_ADMIN_PORT?",
                    pytrace=False)


# --- predicates and checks ----------------------------------------------------------------------


def named(name: str, thread_id: str | None = None, message_id: str | None = None) -> Callable[[Ev], bool]:
    """Events `name` (of that thread, about that message, when given)."""

    def predicate(ev: Ev) -> bool:
        return (ev.name == name and (thread_id is None or ev.thread_id == thread_id)
                and (message_id is None or ev.message_id == message_id))

    return predicate


def assert_event_body(body: Any, name: str | None = None) -> None:
    """`{eventId, seq, type, occurredAt, data}` (more keys are tolerated)."""
    assert isinstance(body, dict), f"a durable event's argument is not an object: {short(body)}"
    missing = EVENT_KEYS - set(body)
    assert not missing, f"event lacks {sorted(missing)}: {short(body, 600)}"
    assert isinstance(body["eventId"], str), body
    uuid.UUID(body["eventId"])
    seq = body["seq"]
    assert isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1, f"bad seq: {short(body)}"
    assert body["type"] in DURABLE_TYPES.values(), f"unknown type: {short(body)}"
    if name is not None:
        assert body["type"] == DURABLE_TYPES[name], f"{name} with type {body['type']!r}"
    assert_timestamp(body["occurredAt"], "event occurredAt")
    assert isinstance(body["data"], dict), f"event data is not an object: {short(body)}"


def assert_event(ev: Ev) -> None:
    """A durable event as a socket got it: one argument, of the event shape, `type` matching."""
    assert ev.durable, ev
    assert len(ev.args) == 1, f"{ev.name} with {len(ev.args)} arguments: {short(ev.args)}"
    assert_event_body(ev.args[0], ev.name)


def assert_receipt(ev: Ev, name: str, thread_id: str, message_id: str, user_id: str) -> None:
    """A `message_delivered` / `message_seen`: data `{threadId, messageId, userId, at}`."""
    assert ev.name == name, ev
    assert_event(ev)
    missing = RECEIPT_KEYS - set(ev.data)
    assert not missing, f"{name} data lacks {sorted(missing)}: {ev.data!r}"
    assert ev.data["threadId"] == thread_id, ev.data
    assert ev.data["messageId"] == message_id, ev.data
    assert ev.data["userId"] == user_id, f"{name} names {ev.data['userId']}, expected {user_id}"
    assert_timestamp(ev.data["at"], f"{name} at")


def in_order(events: list[Ev], start: int | None = None, what: str = "events", had: Sequence[Ev] = ()) -> list[Ev]:
    """The first copy of each seq, in arrival order (what a client keeps that drops seqs it
    already has). Asserts that a repeated seq is the same event (a redelivery: same eventId and
    type), that one eventId has one seq, and that the first copies come in ascending seq order
    without gaps, from `start` when given.

    `had` are the events the client got before it connected with lastSeq `start - 1`: while
    they are unacknowledged, delivery may push them again (a redelivery), and the client drops
    them like any seq it has. Any other event below `start` is a failure."""
    firsts: dict[Any, Ev] = {ev.seq: ev for ev in had}
    seq_of: dict[Any, Any] = {ev.event_id: ev.seq for ev in had}
    kept: list[Ev] = []
    for ev in events:
        assert_event(ev)
        assert seq_of.setdefault(ev.event_id, ev.seq) == ev.seq, (
            f"{what}: eventId {ev.event_id} came with seq {seq_of[ev.event_id]} and with seq {ev.seq}")
        prior = firsts.get(ev.seq)
        if prior is None:
            firsts[ev.seq] = ev
            kept.append(ev)
        else:
            assert (prior.event_id, prior.type) == (ev.event_id, ev.type), (
                f"{what}: seq {ev.seq} names two events: {prior!r} and {ev!r}")
    seqs = [ev.seq for ev in kept]
    if seqs:
        first = seqs[0] if start is None else start
        assert seqs == list(range(first, first + len(seqs))), (
            f"{what}: seqs out of order or with gaps (first copies, arrival order): {seqs}")
    return kept


def dm_with_bob_away(account, open_socket, bob_label: str) -> tuple[Any, Any, Any, str, Ev]:
    """Alice and bob, a DM between them, and bob's socket gone once it got the DM's
    `conversation_created` (what his client remembers as its lastSeq). Returns alice, bob,
    alice's socket, the thread id and that event."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    first = open_socket(bob, label=bob_label)
    tid = a.dm(bob.id)["id"]
    created = first.wait_for(named("conversation_created", tid), "conversation_created")
    first.sio.disconnect()
    return alice, bob, a, tid, created


def repeats(events: list[Ev]) -> list[tuple[Ev, Ev, float]]:
    """(first copy, repeat, seconds between them) for every seq that came more than once."""
    firsts: dict[Any, Ev] = {}
    found = []
    for ev in events:
        if ev.seq in firsts:
            found.append((firsts[ev.seq], ev, round(ev.at - firsts[ev.seq].at, 3)))
        else:
            firsts[ev.seq] = ev
    return found


def assert_same_message(ev: Ev, sent: dict[str, Any]) -> None:
    """A `message_created` carrying the message the sender's ack returned."""
    assert_message(ev.message, thread_id=sent["threadId"], sender_id=sent["senderId"], body=sent["body"],
                   client_message_id=sent["clientMessageId"])
    assert (ev.message["id"], ev.message["seq"]) == (sent["id"], sent["seq"]), (ev.message, sent)


# --- services and RabbitMQ ----------------------------------------------------------------------


def wait_ready(url: str, timeout: float = RESTART_TIMEOUT) -> None:
    wait_until_ready(url, "a restarted service", timeout)


@contextlib.contextmanager
def delivery_started_with(log_name: str, **settings: str):
    """Delivery stopped, and run in its place with `settings` (environment variables) until the
    block ends; then started again as before. Its output goes to `.run/logs/delivery-<log_name>.log`."""
    services("stop", "delivery")
    env = dict(os.environ, ENV_FILE="/dev/null", **settings)
    with open(BIN_DIR.parents[1] / ".run" / "logs" / f"delivery-{log_name}.log", "w") as log:
        process = subprocess.Popen([str(BIN_DIR / "delivery")], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(DELIVERY_READY_URL)
            yield process
        finally:
            stop_process(process)
            services("start", "delivery")


def publish_raw(routing_key: str, body: bytes, message_id: str) -> None:
    """Publishes `body` on `messenger.events`, persistent, mandatory and confirmed (so an
    unroutable publish fails here rather than vanishing)."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            EVENTS_EXCHANGE, routing_key, body,
            pika.BasicProperties(delivery_mode=2, content_type="application/json", message_id=message_id, type=routing_key),
            mandatory=True)
    finally:
        connection.close()


def replay_dead_letter(properties: Any, body: bytes) -> None:
    """Moves a dead letter of `delivery.dead` to `delivery.due`, as an operator replays one (a
    shovel keeps the properties and headers), confirmed."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", "delivery.due", body, properties, mandatory=True)
    finally:
        connection.close()


def take_dead_letters(queue_name: str, message_ids: set[str], timeout: float) -> dict[str, tuple[Any, bytes]]:
    """The messages of `queue_name` whose AMQP message_id is in `message_ids`, waiting up to
    `timeout` seconds for all of them; they are acked (removed). Other messages (other tests
    may leave some) are only looked at: they go back to the queue when the channel closes."""
    found: dict[str, tuple[Any, bytes]] = {}
    deadline = time.monotonic() + timeout
    while True:
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
        try:
            channel = connection.channel()
            while True:
                try:
                    method, properties, body = channel.basic_get(queue_name, auto_ack=False)
                except pika.exceptions.ChannelClosedByBroker as exc:
                    pytest.fail(f"cannot read the queue {queue_name}: {exc!r}")
                if method is None:
                    break
                if properties.message_id in message_ids:
                    found[properties.message_id] = (properties, body)
                    channel.basic_ack(method.delivery_tag)
        finally:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - the broker may have closed it already
                pass
        if set(found) >= message_ids or time.monotonic() >= deadline:
            return found
        time.sleep(0.3)


def now_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ================================================================================================
# 1. a DM: event shape, ack, message_delivered once
# ================================================================================================


def test_dm_message_reaches_the_recipient_and_its_ack_tells_the_sender_once(account, open_socket):
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")

    thread = a.dm(bob.id)
    tid = thread["id"]
    for device in (a, b):
        created = device.wait_for(named("conversation_created", tid), "conversation_created")
        assert_event(created)
        assert created.seq == 1, f"{device.who}: a new user's first event has seq {created.seq}, not 1"
        assert_thread(created.data.get("thread"), kind="DM", members={alice.id, bob.id}, created_by=alice.id)
        assert created.data["thread"]["id"] == tid

    sent = a.send(tid, "hello bob")
    got = b.wait_for(named("message_created", tid, sent["id"]), "message_created")
    assert_event(got)
    assert got.seq == 2, f"bob's second event has seq {got.seq}"
    assert_same_message(got, sent)
    own = a.wait_for(named("message_created", tid, sent["id"]), "alice's own message_created")
    assert own.seq == 2, f"the sender's own message_created has seq {own.seq}, not 2"
    assert own.event_id == got.event_id, "one domain event, two eventIds"

    assert b.ack(got.seq) == got.seq
    receipt = a.wait_for(named("message_delivered", tid, sent["id"]), "message_delivered")
    assert_receipt(receipt, "message_delivered", tid, sent["id"], bob.id)
    assert receipt.seq == 3, f"alice's third event (after THREAD_CREATED and her MESSAGE_CREATED) has seq {receipt.seq}"
    # The receipt's id sorts with its message: the message id's 48 bits of milliseconds, then
    # version 8 (name-based) bits.
    assert receipt.event_id[:13] == sent["id"][:13], f"receipt {receipt.event_id} is not ordered like {sent['id']}"
    assert receipt.event_id[14] == "8", f"receipt {receipt.event_id} is not a version 8 UUID"

    # Acking again, and the sender acking her own message, tell nobody anything new.
    a_mark, b_mark = a.mark(), b.mark()
    assert b.ack(got.seq) == got.seq
    assert a.ack(receipt.seq) == receipt.seq
    a.listen(1.5)
    b.listen(0.2)
    receipts = {ev.event_id for ev in a.durable(where=named("message_delivered"))}
    assert receipts == {receipt.event_id}, f"a repeated ack sent more receipts: {a.durable(where=named('message_delivered'))}"
    late = [ev for ev in a.durable(a_mark) if ev.event_id != receipt.event_id and ev.seq > receipt.seq]
    assert late == [], f"alice got new events after the repeated ack: {late}"
    new = [ev for ev in b.durable(b_mark) if ev.seq > got.seq]
    assert new == [], f"bob got new events after acking (the sender's own ack tells nobody): {new}"
    assert b.durable(where=named("message_delivered")) == [], "the recipient got a message_delivered"

    in_order(a.durable(), start=1, what="alice")
    in_order(b.durable(), start=1, what="bob")


def test_one_ack_for_several_messages_tells_the_sender_once_per_message(account, open_socket):
    # The receipts of one ack are published together (one message on delivery.events when the
    # connection batches them); each still becomes an event of its own for the sender.
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    sent = [a.send(tid, f"message {n}") for n in range(5)]
    got = [b.wait_for(named("message_created", tid, message["id"]), "message_created") for message in sent]
    assert b.ack(max(ev.seq for ev in got)) == max(ev.seq for ev in got)
    receipts = [a.wait_for(named("message_delivered", tid, message["id"]), "message_delivered") for message in sent]
    for receipt, message in zip(receipts, sent):
        assert_receipt(receipt, "message_delivered", tid, message["id"], bob.id)
    a.listen(1.0)
    all_receipts = a.durable(where=named("message_delivered"))
    assert len({ev.event_id for ev in all_receipts}) == 5, f"not one receipt per message: {all_receipts}"
    in_order(a.durable(), start=1, what="alice")


# ================================================================================================
# 2. catch-up after lastSeq, then live, without duplicates or gaps
# ================================================================================================


def test_offline_user_catches_up_after_last_seq_then_gets_live_events_without_duplicate_or_gap(account, open_socket):
    _alice, bob, a, tid, created = dm_with_bob_away(account, open_socket, "bob, first socket")
    assert created.seq == 1
    last_seq = created.seq  # what bob's client remembers; it does not ack

    bodies = [f"offline {i:02d}" for i in range(50)]
    started = time.monotonic()
    sent = send_pipelined(a, tid, bodies)
    assert [m["body"] for m in sent] == bodies
    # Alice's own socket gets the last message once delivery has recorded and pushed it for
    # both. Then the first retry of every event (2 s after its push) goes by while bob is
    # offline; the next ones come 10 s later, after bob has caught up and acked.
    a.wait_for(named("message_created", tid, sent[-1]["id"]), "alice's own last message_created", timeout=30)
    sending = time.monotonic() - started
    # Alice does not ack either: her copies' first retries come with bob's (each user's event is
    # pushed, and checked 2 s later, together), so once she has every repeat, bob's have gone by.
    deadline = time.monotonic() + 30
    while len({repeat.seq for _, repeat, _ in repeats(a.durable(where=named("message_created", tid)))}) < 50:
        assert time.monotonic() < deadline, "alice's copies were not all pushed again within 30 s"
        a.listen(0.2)
    a.listen(1.0)

    b = open_socket(bob, last_seq=last_seq, label="bob, catching up")
    connected = time.monotonic()
    replayed = b.collect(named("message_created", tid), 50, "replayed message_created", timeout=30)
    caught_up = time.monotonic() - connected
    replayed_to = max(ev.seq for ev in replayed)
    assert b.ack(replayed_to) == replayed_to
    first_durable = b.durable()[0]
    assert (first_durable.name, first_durable.seq) == ("message_created", last_seq + 1), (
        f"the replay after lastSeq={last_seq} starts with {first_durable!r}")

    live_bodies = [f"live {i}" for i in range(5)]
    live = [a.send(tid, body) for body in live_bodies]
    arrived = b.collect(named("message_created", tid), 55, "message_created (50 replayed + 5 live)")
    arrived_to = max(ev.seq for ev in arrived)
    assert b.ack(arrived_to) == arrived_to
    b.listen(QUIET_PERIOD)

    timing = f"(sending took {sending:.1f} s, the catch-up {caught_up:.1f} s)"
    # A copy that came a second retry delay after alice's own copy is delivery's second retry:
    # on a slow machine bob's catch-up and ack can take longer than that, and the contract asks
    # for the retry then. Any other repeat is a fault (at the replay's boundary, for one).
    pushed_at: dict[Any, float] = {}
    for ev in a.durable(where=named("message_created", tid)):
        pushed_at.setdefault(ev.message_id, ev.at)  # her first copy's time, not her retry's
    faults = [(first, repeat, gap) for first, repeat, gap in repeats(b.durable())
              if repeat.at - pushed_at.get(repeat.message_id, repeat.at) < FIRST_RETRY_DELAY + SECOND_RETRY_DELAY - 1]
    assert faults == [], f"events came twice {timing}: {faults}"
    # The rest is about first copies (a retry's copy, allowed above, comes later).
    seen: set[Any] = set()
    firsts = [ev for ev in b.durable() if not (ev.seq in seen or seen.add(ev.seq))]
    messages = [ev for ev in firsts if named("message_created", tid)(ev)]
    assert [ev.seq for ev in messages] == list(range(2, 57)), f"seqs: {[ev.seq for ev in messages]}"
    assert [ev.message.get("body") for ev in messages] == bodies + live_bodies
    assert [ev.message_id for ev in messages] == [m["id"] for m in sent + live]
    assert [ev.seq for ev in firsts] == list(range(2, 57)), f"other events reached bob: {firsts}"
    for ev, message in zip(messages, sent + live):
        assert_same_message(ev, message)
    assert len({ev.event_id for ev in messages}) == 55, "two events share an eventId"


# ================================================================================================
# 3. several devices; acks are per user
# ================================================================================================


@pytest.mark.parametrize("last_seq", ["3", -1, 1.5, True, [1], {"seq": 1}], ids=str)
def test_a_last_seq_that_is_not_a_whole_number_refuses_the_connect_naming_it(account, last_seq):
    # Taken as 0, it would hand the client a full replay it did not ask for.
    assert connect_error(GATEWAY_URL, {"token": account().access, "lastSeq": last_seq}, transports=["websocket"]) == {
        "message": "invalid_argument",
        "data": {"code": "invalid_argument", "message": "lastSeq must be a whole number, 0 or more"},
    }


def test_every_device_gets_every_event_and_an_ack_from_one_device_counts_for_all(account, open_socket):
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    a_laptop = open_socket(alice, transports=["polling"], label="alice's laptop")
    phone = open_socket(bob, label="bob's phone")
    laptop = open_socket(bob, transports=["polling"], label="bob's laptop")

    tid = a.dm(bob.id)["id"]
    sent = [a.send(tid, f"to every device {i}") for i in range(3)]
    ids = [m["id"] for m in sent]

    for device in (phone, laptop):
        device.collect(named("message_created", tid), 3, "message_created")
        kept = in_order(device.durable(), start=1, what=device.who)
        assert [ev.name for ev in kept[:4]] == ["conversation_created"] + ["message_created"] * 3, kept
        assert [ev.message_id for ev in kept[1:4]] == ids
    assert ([ev.event_id for ev in in_order(phone.durable())[:4]]
            == [ev.event_id for ev in in_order(laptop.durable())[:4]]), "the devices got different eventIds"
    # The sender's other device gets her own messages too.
    mine = a_laptop.collect(named("message_created", tid), 3, "alice's own message_created on her other device")
    assert [ev.message_id for ev in in_order(mine)] == ids

    # One device acks the first three events (THREAD_CREATED and two messages).
    assert phone.ack(3) == 3
    for m in sent[:2]:
        receipt = a.wait_for(named("message_delivered", tid, m["id"]), f"message_delivered of {m['body']!r}")
        assert_receipt(receipt, "message_delivered", tid, m["id"], bob.id)

    # A new device gets only what is not acknowledged: the third message (seq 4).
    for last_seq, label in (
        (0, "bob's tablet (lastSeq 0)"), (None, "bob's desktop (no lastSeq)"), (3.0, "bob's watch (lastSeq 3.0)"),
    ):
        device = open_socket(bob, last_seq=last_seq, label=label)
        first = device.wait_for(lambda ev: ev.durable, "a replayed event")
        assert (first.name, first.seq, first.message_id) == ("message_created", 4, ids[2]), f"{label}: first event {first!r}"
        device.listen(QUIET_PERIOD)
        old = [ev for ev in device.durable() if ev.seq <= 3]
        assert old == [], f"{label} got acknowledged events: {old}"
        in_order(device.durable(), start=4, what=label)

    # The other device sees the ack too; its ack of the rest tells alice about the third message.
    assert [e["seq"] for e in laptop.sync(0)["events"]] == [4]
    assert laptop.ack(4) == 4
    receipt = a.wait_for(named("message_delivered", tid, ids[2]), "message_delivered of the third message")
    assert_receipt(receipt, "message_delivered", tid, ids[2], bob.id)
    assert phone.sync(0) == {"events": [], "hasMore": False, "latestSeq": 4}, "the laptop's ack did not count for the phone"

    a.listen(1.0)
    per_message: dict[Any, set[Any]] = {}
    for ev in a.durable(where=named("message_delivered", tid)):
        per_message.setdefault(ev.message_id, set()).add(ev.event_id)
    assert {k: len(v) for k, v in per_message.items()} == {i: 1 for i in ids}, f"receipts per message: {per_message}"
    in_order(a.durable(), start=1, what="alice")


def test_a_new_device_of_a_user_who_acknowledged_everything_gets_only_new_events(account, open_socket):
    """Bob's phone acknowledges everything; then he logs in on a laptop (lastSeq 0). Its replay
    is empty, and the next message reaches it alone. Until the fortieth session the laptop
    took that first push for a gap after seq 0, and the gap's fill (which fetches acknowledged
    events too) sent it every old event the log kept, up to 500."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    phone = open_socket(bob, label="bob's phone")
    tid = a.dm(bob.id)["id"]
    for i in range(5):
        a.send(tid, f"before the laptop {i}")
    phone.collect(named("message_created", tid), 5, "message_created")
    assert phone.ack(6) == 6
    laptop = open_socket(bob, last_seq=0, label="bob's laptop")
    laptop.listen(QUIET_PERIOD)
    assert laptop.durable() == [], f"the laptop's replay had acknowledged events: {laptop.durable()}"
    message = a.send(tid, "after the laptop")
    first = laptop.wait_for(named("message_created", tid, message["id"]), "the new message")
    laptop.listen(QUIET_PERIOD)
    assert [ev.seq for ev in laptop.durable()] == [7] and first.seq == 7, laptop.durable()


def thread_messages(account: Any, thread_id: str) -> list[dict[str, Any]]:
    """Every message of a thread through REST, newest first."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"before": cursor} if cursor else {})}
        resp = requests.get(f"{GATEWAY_URL}/api/threads/{thread_id}/messages", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {account.access}"})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        items += page["items"]
        cursor = page.get("nextCursor")
        if not cursor:
            return items


def every_event(device: Device) -> list[dict[str, Any]]:
    """Every unacknowledged event of the device's user, in seq order, page after page."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = device.sync(after, 500)
        events += page["events"]
        if not page["hasMore"] or not page["events"]:
            return events
        after = events[-1]["seq"]


def test_a_thread_is_recorded_in_order_when_deliverys_database_connections_are_cut(account, open_socket):
    """Alice sends 200 messages to Bob without waiting for their acks while the connections of
    delivery's recording statements are terminated again and again. Bob's log must hold each
    message once, in the thread's order. Until the fortieth session a batch whose recording
    failed went back to the queue and came again behind the next batch, which took the seqs
    before it."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    phone = open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    stop = threading.Event()
    cuts = [0]

    def cut() -> None:
        while not stop.is_set():
            cuts[0] += int(psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE query LIKE '%INSERT INTO user_sequences%' AND pid <> pg_backend_pid()") or 0)
            time.sleep(0.05)

    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        for i in range(200):
            a.sio.emit("create_message", {"threadId": tid, "clientMessageId": f"cut {i}", "body": f"cut {i}"})
        deadline = time.monotonic() + 60
        while len(thread_messages(alice, tid)) < 200 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        cutter.join(timeout=30)
    thread_seq = {message["id"]: message["seq"] for message in thread_messages(alice, tid)}
    assert len(thread_seq) == 200, f"{len(thread_seq)} of the 200 messages were stored"
    assert cuts[0] > 0, "no recording statement was caught to be cut"
    deadline = time.monotonic() + 60
    while True:
        events = every_event(phone)
        created = [event for event in events if event["type"] == "MESSAGE_CREATED"]
        if len(created) >= 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ids = [event["data"]["message"]["id"] for event in created]
    assert sorted(ids) == sorted(thread_seq), f"{len(ids)} message_created for {len(thread_seq)} messages"
    order = [thread_seq[mid] for mid in ids]
    assert order == sorted(order), f"out of the thread's order after {cuts[0]} cuts: {order}"


def test_devices_coming_back_together_each_get_the_whole_replay_in_order(account, open_socket):
    # Sockets of one user that reconnect at the same moment with the same lastSeq may share the
    # gateway's fetch of their replay; each still gets every event once, in seq order, and the
    # live events that arrive meanwhile after it.
    _alice, bob, a, tid, created = dm_with_bob_away(account, open_socket, "bob")
    sent = send_pipelined(a, tid, [f"while away {i:02d}" for i in range(30)])
    a.wait_for(named("message_created", tid, sent[-1]["id"]), "alice's own last message_created", timeout=30)

    devices: list[Any] = [None] * 12
    failures: list[str] = []
    start = threading.Barrier(len(devices) + 1)

    def come_back(i: int) -> None:
        try:
            start.wait(timeout=30)
            devices[i] = open_socket(bob, last_seq=created.seq, label=f"bob's device {i}")
        except Exception as exc:  # noqa: BLE001 - reported below with the device's index
            failures.append(f"device {i}: {exc!r}")

    threads = [threading.Thread(target=come_back, args=(i,)) for i in range(len(devices))]
    for thread in threads:
        thread.start()
    start.wait(timeout=30)
    live = [a.send(tid, f"live {i}") for i in range(3)]
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    expected = [m["id"] for m in sent + live]
    for device in devices:
        device.collect(named("message_created", tid), len(expected), "message_created (30 replayed + 3 live)")
        kept = in_order(device.durable(), start=created.seq + 1, what=device.who, had=[created])
        assert [ev.message_id for ev in kept[: len(expected)]] == expected, device.who


# ================================================================================================
# 4. redelivery of unacknowledged events
# ================================================================================================


def pushed_again(device: Device, original: Ev, what: str) -> Ev:
    """The push of `original` again on `device`: after the first retry delay, the same event
    (same id, seq and body)."""
    again = device.wait_for(lambda ev: ev.event_id == original.event_id, f"a redelivery of {what}",
                            timeout=REDELIVERY_TIMEOUT, since=original.n + 1)
    waited = again.at - original.at
    assert waited >= 1.0, f"pushed again after {waited:.2f} s (the first retry delay is {FIRST_RETRY_DELAY} s)"
    assert again.name == original.name and again.body == original.body, (
        f"the redelivery differs: {short(original.body, 400)} vs {short(again.body, 400)}")
    return again


def test_an_unacknowledged_event_is_pushed_again_with_the_same_id_and_seq_until_acked(account, open_socket):
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]

    m1 = a.send(tid, "push me again")
    original = b.wait_for(named("message_created", tid, m1["id"]), "message_created")
    again = pushed_again(b, original, "the unacknowledged event")

    # A second message acked at once is never pushed again (its first retry was due 2 s later);
    # neither is the first one, whose next retry was due 10 s after its first redelivery.
    m2 = a.send(tid, "ack me at once")
    e2 = b.wait_for(named("message_created", tid, m2["id"]), "message_created of the second message")
    assert e2.seq == original.seq + 1, (original, e2)
    assert b.ack(e2.seq) == e2.seq
    after_ack = b.mark()
    acked_at = time.monotonic()
    until = max(acked_at + FIRST_RETRY_DELAY + 2.5, again.at + SECOND_RETRY_DELAY + 2.0)
    b.listen(until - time.monotonic())
    late = [ev for ev in b.durable(after_ack) if ev.event_id in (original.event_id, e2.event_id)]
    assert late == [], f"acknowledged events were pushed again: {[(ev, round(ev.at - acked_at, 2)) for ev in late]}"
    in_order(b.durable(), start=1, what="bob")


def test_an_event_marked_seen_but_not_acknowledged_is_pushed_again(account, open_socket):
    """`mark_seen` is not an acknowledgement: a message seen (on this device or another) and not
    acknowledged is pushed again like any other, for a socket of the user that missed it. Until
    the forty-fourth session a seen delivery was never tried again (a review)."""
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    m = a.send(tid, "seen, not acked")
    original = b.wait_for(named("message_created", tid, m["id"]), "message_created")
    b.ok("mark_seen", {"threadId": tid, "messageId": m["id"]})
    pushed_again(b, original, "the event marked seen")


def test_a_receipt_the_sender_does_not_acknowledge_is_pushed_again_until_acked(account, open_socket):
    # A receipt is an event of the sender's like any other: the event consumer records it, pushes
    # it and schedules its first retry check (docs/delivery.md).
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    m = a.send(tid, "tell me it arrived")
    got = b.wait_for(named("message_created", tid, m["id"]), "message_created")
    assert b.ack(got.seq) == got.seq
    receipt = a.wait_for(named("message_delivered", tid, m["id"]), "message_delivered")
    assert_receipt(receipt, "message_delivered", tid, m["id"], bob.id)
    again = pushed_again(a, receipt, "the unacknowledged receipt")
    # Acknowledged, it is not pushed again (its next retry was due 10 s after the first).
    assert a.ack(receipt.seq) == receipt.seq
    after_ack = a.mark()
    a.listen(max(0.0, again.at + SECOND_RETRY_DELAY + 2.0 - time.monotonic()))
    late = [ev for ev in a.durable(after_ack) if ev.event_id == receipt.event_id]
    assert late == [], f"an acknowledged receipt was pushed again: {late}"
    in_order(a.durable(), start=1, what="alice")


def test_a_domain_event_published_twice_is_recorded_once(account, open_socket):
    # The events table is delivery's inbox (docs/delivery.md): the same domain event again, as
    # the outbox relay publishes it after a lost confirm, takes no seq and makes no new event.
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        tap = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.queue_bind(tap, EVENTS_EXCHANGE, "messaging.message_created.v1")
        m1 = a.send(tid, "recorded once")
        got = b.wait_for(named("message_created", tid, m1["id"]), "message_created")
        assert b.ack(got.seq) == got.seq
        captured = None
        deadline = time.monotonic() + 10
        while captured is None and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(tap, auto_ack=True)
            if method is None:
                time.sleep(0.05)
            elif json.loads(body)["data"]["data"]["message"]["id"] == m1["id"]:
                captured = (properties, body)
        assert captured is not None, "the domain event of the message was not seen on messenger.events"
    finally:
        connection.close()

    properties, body = captured
    publish_raw("messaging.message_created.v1", body, properties.message_id)
    m2 = a.send(tid, "after the duplicate")
    e2 = b.wait_for(named("message_created", tid, m2["id"]), "the next message_created")
    assert e2.seq == got.seq + 1, f"the duplicate took a seq: {got.seq} then {e2.seq}"
    again = [ev for ev in b.durable() if ev.message_id == m1["id"] and ev.event_id != got.event_id]
    assert again == [], f"the duplicate became an event of its own: {again}"
    in_order(b.durable(), start=1, what="bob")


# ================================================================================================
# 5. sync and ack_events
# ================================================================================================


def test_ack_events_past_a_64_bit_integer_is_clamped_too(account, open_socket):
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    tid = a.dm(bob.id)["id"]
    created = a.wait_for(named("conversation_created", tid), "conversation_created")
    assert a.ack(2**63 - 1) == created.seq
    assert a.ack(10**30) == created.seq


def test_sync_pages_unacknowledged_events_and_ack_events_is_cumulative_and_clamped(account, open_socket):
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    sent = [a.send(tid, f"sync {i}") for i in range(4)]
    b.collect(named("message_created", tid), 4, "message_created")
    pushed = {ev.seq: ev for ev in in_order(b.durable(), start=1, what="bob")}
    assert sorted(pushed) == [1, 2, 3, 4, 5], pushed

    pages, after, has_more = [], 0, True
    while has_more:
        assert len(pages) < 5, f"sync with limit 2 does not end: {pages}"
        page = b.sync(after, limit=2)
        pages.append([(e["seq"], e["type"]) for e in page["events"]])
        for event in page["events"]:
            assert event["eventId"] == pushed[event["seq"]].event_id, f"sync and push disagree on seq {event['seq']}"
            assert event == pushed[event["seq"]].body, f"sync and push disagree: {short(event)} vs {pushed[event['seq']]!r}"
        has_more = page["hasMore"]
        if page["events"]:
            after = page["events"][-1]["seq"]
    assert [[seq for seq, _ in p] for p in pages] == [[1, 2], [3, 4], [5]], pages
    assert pages[0][0][1] == "THREAD_CREATED" and all(t == "MESSAGE_CREATED" for p in pages[1:] for _, t in p), pages
    assert [m["id"] for m in sent] == [pushed[s].message_id for s in (2, 3, 4, 5)]

    everything = b.sync(0)
    assert [e["seq"] for e in everything["events"]] == [1, 2, 3, 4, 5] and everything["hasMore"] is False
    last_page = b.sync(4, limit=1)
    assert [e["seq"] for e in last_page["events"]] == [5] and last_page["hasMore"] is False, last_page
    assert b.sync(3, limit=1)["hasMore"] is True
    assert b.sync(5)["events"] == [] and b.sync(10**6)["events"] == []
    assert [e["seq"] for e in b.sync(0, limit=500)["events"]] == [1, 2, 3, 4, 5]

    # Each refusal names the field (10**400: a JSON number past a double's range).
    for payload, field in (({"afterSeq": 0, "limit": 0}, "limit"), ({"afterSeq": 0, "limit": 501}, "limit"),
                           ({"afterSeq": 0, "limit": -1}, "limit"), ({"afterSeq": -1}, "afterSeq"),
                           ({"afterSeq": -1, "limit": 10}, "afterSeq"), ({"afterSeq": "x"}, "afterSeq"),
                           ({"afterSeq": 0, "limit": "x"}, "limit"), ({"afterSeq": 1.5}, "afterSeq"),
                           ({"afterSeq": 0, "limit": 2.5}, "limit"), ({"afterSeq": 0, "limit": 10**400}, "limit"),
                           ({"afterSeq": 0, "limit": -10**400}, "limit"),
                           # A date past what PostgreSQL's driver encodes stopped delivery until
                           # the sixty-second session (Foundation reads years of ten digits).
                           ({"afterSeq": 0, "includeAcknowledged": True,
                             "acknowledgedSince": "500000-01-01T00:00:00Z"}, "acknowledgedSince")):
        message = err(b.call("sync", payload), "invalid_argument", f"sync {payload}")
        assert field in message, f"sync {payload}: the error does not name {field}: {message!r}"
    # Past every seq, however large: nothing after it.
    nothing = {"events": [], "hasMore": False, "latestSeq": 5}
    assert b.sync(2**70) == nothing and b.sync(10**400) == nothing

    # Cumulative: acked events leave sync; an older ack does not bring them back.
    assert b.ack(2) == 2
    assert [e["seq"] for e in b.sync(0)["events"]] == [3, 4, 5]
    assert [e["seq"] for e in b.sync(3)["events"]] == [4, 5]
    # A lower ack changes nothing, and its answer says how far the acknowledgement stands.
    assert b.ack(1) == 2
    assert [e["seq"] for e in b.sync(0)["events"]] == [3, 4, 5], "a lower ack brought acknowledged events back"
    err(b.call("ack_events", {"upToSeq": "x"}), "invalid_argument", "ack_events with a string")

    # Clamped to the latest seq, however large.
    assert b.ack(10**400) == 5
    assert b.ack(10**9) == 5
    assert b.sync(0) == {"events": [], "hasMore": False, "latestSeq": 5}
    # bob's acks sent alice receipts, nothing to bob.
    for m in sent:
        a.wait_for(named("message_delivered", tid, m["id"]), f"message_delivered of {m['body']!r}")
    b.listen(0.5)
    assert [ev for ev in b.durable() if ev.seq > 5] == [], f"bob got events from his own acks: {b.durable()}"


# ================================================================================================
# 6. mark_seen
# ================================================================================================


def test_a_socket_whose_last_seq_is_past_the_users_latest_still_gets_every_event(account, open_socket):
    """Its lastSeq (another account's, one from before a reset) comes down to the user's latest
    seq: the next events reach it live. Bob's other device acknowledges each event at once, so
    no retry could bring it instead."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    tid = a.dm(bob.id)["id"]  # bob's seq 1
    steady = open_socket(bob, label="bob's phone")
    steady.wait_for(named("conversation_created", tid), "conversation_created")
    assert steady.ack(1) == 1
    ahead = open_socket(bob, last_seq=100, label="bob's laptop, lastSeq 100")
    for i in range(2):
        sent = a.send(tid, f"live {i}")
        got = steady.wait_for(named("message_created", tid, sent["id"]), "message_created on the phone")
        assert steady.ack(got.seq) == got.seq
        ahead.wait_for(named("message_created", tid, sent["id"]), f"message {i} on the socket with lastSeq 100")
    sync = steady.sync(0)
    assert sync["events"] == [] and sync.get("latestSeq") == 3, sync


def test_a_deleted_message_reaches_a_device_that_had_not_acknowledged_it_erased(account, open_socket):
    """Its MESSAGE_CREATED and MESSAGE_UPDATED, replayed and synced, carry the message as the
    thread shows it: body "", deletedAt set; a message not deleted keeps its body."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    tid = a.dm(bob.id)["id"]
    secret = a.send(tid, "my PIN is 4321 (oops)")
    a.ok("update_message", {"messageId": secret["id"], "body": "my PIN is 4321, edited"})
    kept = a.send(tid, "this one stays")
    a.ok("delete_message", {"messageIds": [secret["id"]]})
    # Alice's copy of the deletion means delivery recorded it (and erased in the same transaction).
    a.wait_for(named("bulk_message_deleted", tid), "bulk_message_deleted")

    b = open_socket(bob, label="bob, offline until now")
    b.wait_for(named("bulk_message_deleted", tid), "bulk_message_deleted in bob's replay")
    synced = {e["seq"]: e for e in b.sync(0)["events"]}
    for ev in b.durable():
        for copy, message in (("replayed", ev.message), ("synced", synced[ev.seq]["data"].get("message") or {})):
            if ev.message_id == secret["id"] and ev.name in ("message_created", "message_updated"):
                assert message.get("body") == "" and message.get("deletedAt"), f"{copy} {ev!r}: {message!r}"
                assert message.get("attachments") == [] and message.get("reactions") == [], f"{copy}: {message!r}"
            elif ev.message_id == kept["id"] and ev.name == "message_created":
                assert message.get("body") == "this one stays" and message.get("deletedAt") is None, message
    assert "4321" not in json.dumps([ev.args for ev in b.durable()]) + json.dumps(list(synced.values()))
    # The same deletedAt as the thread's page, and in the deletion's event (until the
    # thirty-ninth session the events took the deletion event's time, a millisecond or two off).
    page = requests.get(f"{GATEWAY_URL}/api/threads/{tid}/messages", timeout=10,
                        headers={"Authorization": f"Bearer {bob.access}"}).json()["items"]
    shown = next(item["deletedAt"] for item in page if item["id"] == secret["id"])
    erased = [ev.message.get("deletedAt") for ev in b.durable()
              if ev.message_id == secret["id"] and ev.name in ("message_created", "message_updated")]
    assert erased and set(erased) == {shown}, (erased, shown)
    deletion = next(ev for ev in b.durable() if ev.name == "bulk_message_deleted")
    assert deletion.args[0]["data"].get("deletedAt") == shown, deletion.args


def test_mark_seen_tells_the_other_members_and_not_the_one_who_saw(account, open_socket):
    alice, bob, carol = account(), account(), account()
    a, b, c = open_socket(alice, label="alice"), open_socket(bob, label="bob"), open_socket(carol, label="carol")
    tid = a.group([bob.id, carol.id], title="seen")["id"]
    message = a.send(tid, "did you see this?")
    for device in (b, c):
        device.wait_for(named("message_created", tid, message["id"]), "message_created")

    seen = b.ok("mark_seen", {"threadId": tid, "messageId": message["id"]})
    assert (seen.get("threadId"), seen.get("messageId")) == (tid, message["id"]), f"mark_seen ack: {seen!r}"
    for device in (a, c):
        ev = device.wait_for(named("message_seen", tid, message["id"]), "message_seen")
        assert_receipt(ev, "message_seen", tid, message["id"], bob.id)
    b.listen(QUIET_PERIOD)
    assert b.durable(where=named("message_seen")) == [], f"the one who saw got message_seen: {b.durable()}"
    # Bob's delivery of the message is SEEN, not yet acknowledged; Carol's is pending.
    def status() -> list[str]:
        return sorted(psql(
            "SELECT d.user_id || ':' || d.status || ':' || (d.delivered_at IS NOT NULL) FROM delivery.deliveries d "
            f"JOIN delivery.events e ON e.event_id = d.event_id WHERE e.message_id = '{message['id']}' "
            f"AND e.name = 'MESSAGE_CREATED' AND d.user_id IN ('{bob.id}', '{carol.id}') ORDER BY d.user_id").splitlines())
    assert status() == sorted([f"{bob.id}:SEEN:false", f"{carol.id}:PENDING:false"])
    # Seen before acknowledged, the usual client flow: Bob's ack still tells Alice, once, and
    # marks his delivery delivered while it stays SEEN.
    got = b.durable(where=named("message_created", tid, message["id"]))[0]
    assert b.ack(got.seq) == got.seq
    receipt = a.wait_for(named("message_delivered", tid, message["id"]), "message_delivered after mark_seen")
    assert_receipt(receipt, "message_delivered", tid, message["id"], bob.id)
    # The receipt is confirmed by the broker before the ack commits, so it may arrive first.
    deadline = time.monotonic() + 5
    while status() != sorted([f"{bob.id}:SEEN:true", f"{carol.id}:PENDING:false"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status() == sorted([f"{bob.id}:SEEN:true", f"{carol.id}:PENDING:false"])
    a.listen(1.0)
    receipts = {ev.event_id for ev in a.durable(where=named("message_delivered"))}
    assert receipts == {receipt.event_id}, f"more than one receipt: {a.durable(where=named('message_delivered'))}"
    for device in (a, b, c):
        in_order(device.durable(), start=1, what=device.who)


def test_mark_seen_marks_the_thread_up_to_the_message_and_no_further(account, open_socket):
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    other = a.group([bob.id], title="other thread")["id"]
    messages = [a.send(tid, f"message {n}") for n in range(1, 5)]
    elsewhere = a.send(other, "in another thread")
    for message in messages:
        b.wait_for(named("message_created", tid, message["id"]), "message_created")
    b.wait_for(named("message_created", other, elsewhere["id"]), "message_created")

    def statuses() -> list[str]:
        """Bob's deliveries of the five messages, in the order they were sent."""
        ids = [m["id"] for m in messages] + [elsewhere["id"]]
        rows = dict(line.split(":") for line in psql(
            "SELECT e.message_id || ':' || d.status FROM delivery.deliveries d "
            "JOIN delivery.events e ON e.event_id = d.event_id "
            f"WHERE d.user_id = '{bob.id}' AND e.name = 'MESSAGE_CREATED' "
            f"AND e.message_id IN ({', '.join(repr(i) for i in ids)})").splitlines())
        return [rows.get(i, "-") for i in ids]

    def mark(message: dict, thread: str, expected: list[str]) -> None:
        b.ok("mark_seen", {"threadId": thread, "messageId": message["id"]})
        a.wait_for(named("message_seen", thread, message["id"]), "message_seen")
        deadline = time.monotonic() + 15
        while statuses() != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses() == expected

    pending, seen = "PENDING", "SEEN"
    mark(messages[1], tid, [seen, seen, pending, pending, pending])
    # An older message does not move the mark back: no event, nothing changes.
    b.ok("mark_seen", {"threadId": tid, "messageId": messages[0]["id"]})
    a.listen(QUIET_PERIOD)
    assert a.durable(where=named("message_seen", tid, messages[0]["id"])) == []
    assert statuses() == [seen, seen, pending, pending, pending]
    # The next mark covers the messages after the last one, and only this thread's.
    mark(messages[3], tid, [seen, seen, seen, seen, pending])
    mark(elsewhere, other, [seen] * 5)


# ================================================================================================
# 7. poison messages
# ================================================================================================


def test_poison_domain_events_are_dead_lettered_and_later_events_still_flow(account, open_socket):
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    before = a.send(tid, "before the poison")
    b.wait_for(named("message_created", tid, before["id"]), "message_created before the poison")

    marker = uuid.uuid4().hex
    unknown_event_id = str(uuid.uuid4())
    poisons = {
        f"e2e-poison-{marker}-text": b"not json " + marker.encode(),
        f"e2e-poison-{marker}-shape": json.dumps({"hello": marker}).encode(),
        # A well-formed envelope whose event name delivery does not know, addressed to bob.
        f"e2e-poison-{marker}-name": json.dumps({
            "type": "messaging.e2e_unknown.v1", "id": unknown_event_id, "occurredAt": now_timestamp(),
            "actorId": alice.id,
            "data": {"name": "E2E_NOT_AN_EVENT", "threadId": tid, "recipients": [alice.id, bob.id],
                     "data": {"message": {"id": str(uuid.uuid4()), "threadId": tid, "marker": marker}}},
        }).encode(),
    }
    # A routing key no other consumer binds (delivery binds messaging.#).
    for message_id, body in poisons.items():
        publish_raw("messaging.e2e_poison.v1", body, message_id)

    after = a.send(tid, "after the poison")
    got = b.wait_for(named("message_created", tid, after["id"]), "message_created after the poison")
    assert_same_message(got, after)

    dead = take_dead_letters(POISON_QUEUE, set(poisons), timeout=20)
    assert set(dead) == set(poisons), f"not dead-lettered to {POISON_QUEUE}: {sorted(set(poisons) - set(dead))}"
    for message_id, (_properties, body) in dead.items():
        assert body == poisons[message_id], f"{message_id} changed on its way: {body[:200]!r}"

    b.listen(0.5)
    assert [ev for ev in b.log if ev.event_id == unknown_event_id or marker in json.dumps(ev.args, default=str)] == []
    kept = in_order(b.durable(), start=1, what="bob")
    assert [ev.message_id for ev in kept if ev.name == "message_created"] == [before["id"], after["id"]]
    assert got.seq == 3, f"a poison message took a seq: the message after it has seq {got.seq}"


def test_pushes_to_the_gateways_expire_in_the_queue(account, open_socket):
    """Pushes are the fast path; the log, its retries and the replay carry the same events. A
    push waits at most a minute in `gateway.pushes` for a gateway (`expiration`), so that an
    outage of the gateways does not fill the broker with five stale pushes per delivery. A
    queue of the test's own, bound like `gateway.pushes`, gets a copy of each."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    tid = a.dm(bob.id)["id"]
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        copies = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(copies, "messenger.gateway", "push")
        sent = a.send(tid, "a push with an expiration")
        properties = None
        deadline = time.monotonic() + 15
        while properties is None and time.monotonic() < deadline:
            method, header, body = channel.basic_get(copies, auto_ack=True)
            if method is not None and sent["id"].encode() in body:
                properties = header
            elif method is None:
                time.sleep(0.1)
    finally:
        connection.close()
    assert properties is not None, "no push of the message reached the gateways' exchange"
    assert properties.expiration == "60000", properties


@pytest.mark.parametrize("in_a_row, queued, small_chunks", [(1, False, False), (4, True, False), (1, False, True)])
def test_a_domain_event_the_database_refuses_is_dead_lettered_and_the_events_behind_it_flow(
        account, open_socket, in_a_row, queued, small_chunks):
    """A trigger makes PostgreSQL refuse to record some messages' events (a failure that stays,
    unlike the database being away). Delivery must dead-letter those events to
    `delivery.events.dead` and record the ones behind them, in order. Until the forty-fifth
    session the batch went back to the queue after five tries, came again a second later and
    failed again, every few seconds for ever, and was never dead-lettered (and a batch it came
    back in failed whole). Until the fiftieth, three refused in a row at the head of the queue
    (`queued`: sent while delivery was stopped, so that they come first, in one batch) sent
    their batch back every time, and the events behind them never came.

    `small_chunks`: delivery records a batch in chunks cut by their pushes' bytes (a quarter of
    `DELIVERY_PUSH_BYTES_IN_FLIGHT`, here 16 KiB), and the refused message's escaped body makes
    its pushes a chunk of their own; the first version of the fiftieth session's change kept
    such a message for good, with every event behind it (a review)."""
    with delivery_started_with("small-chunks", DELIVERY_PUSH_BYTES_IN_FLIGHT="65536") if small_chunks \
            else contextlib.nullcontext():
        refused_events_flow(account, open_socket, in_a_row, queued, large=small_chunks)


@contextlib.contextmanager
def events_refused_where(condition: str):
    """A trigger makes PostgreSQL refuse delivery's events whose row meets `condition` (SQL on
    `NEW`), until the block ends."""
    name = f"e2e_refuse_{uuid.uuid4().hex[:12]}"
    psql(f"CREATE FUNCTION delivery.{name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
         f"IF {condition} THEN RAISE EXCEPTION 'e2e: refused'; END IF; RETURN NEW; END $$; "
         f"CREATE TRIGGER {name} BEFORE INSERT ON delivery.events FOR EACH ROW EXECUTE FUNCTION delivery.{name}();")
    try:
        yield
    finally:
        psql(f"DROP TRIGGER IF EXISTS {name} ON delivery.events; DROP FUNCTION IF EXISTS delivery.{name}();")


def a_dm_with_one_message(account, open_socket, what: str):
    """Alice's and Bob's sockets, their DM, and a message Bob got: (a, b, tid, message)."""
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    message = a.send(tid, what)
    b.wait_for(named("message_created", tid, message["id"]), f"message_created {what}")
    return a, b, tid, message


def refused_events_flow(account, open_socket, in_a_row: int, queued: bool, large: bool) -> None:
    """The test above: `in_a_row` refused messages (`large`: with 24 KB escaped bodies)."""
    a, b, tid, before = a_dm_with_one_message(account, open_socket, "before the refused ones")
    marker = f"refused-{uuid.uuid4().hex}"
    dead: list[bytes] = []
    with events_refused_where(f"NEW.data LIKE '%{marker}%'"):
        if queued:
            services("stop", "delivery")
        try:
            padding = "\u0001" * 3_900 if large else ""
            refused = [a.send(tid, f"{marker} {n} {padding} {marker}") for n in range(in_a_row)]
            after = [a.send(tid, f"after {n}") for n in range(3)]
        finally:
            if queued:
                services("start", "delivery")
        for message in after:
            b.wait_for(named("message_created", tid, message["id"]), f"message_created for {message['body']!r}",
                       timeout=60)
        deadline = time.monotonic() + 30
        while len(dead) < in_a_row and time.monotonic() < deadline:
            dead += [body for _, (_, body) in take_dead_letters_where(
                POISON_QUEUE, lambda body: marker.encode() in body).items()]
            time.sleep(0.3)
    assert len(dead) == in_a_row, f"not every refused event was dead-lettered to {POISON_QUEUE} once: {len(dead)}"
    b.listen(0.5)
    kept = in_order(b.durable(), start=1, what="bob")
    assert [ev.message_id for ev in kept if ev.name == "message_created"] == (
        [before["id"]] + [message["id"] for message in after])
    assert not {message["id"] for message in refused} & {ev.message_id for ev in b.log}


def test_a_database_that_refuses_every_event_dead_letters_none_and_records_them_in_order_once_it_takes_them(
        account, open_socket):
    """The other side of the test above: when PostgreSQL refuses every event, the failure is
    the system's, not the messages'. Delivery must keep them (at the head of the queue, tried again)
    and dead-letter none, and record them in order once the database takes them."""
    a, b, tid, before = a_dm_with_one_message(account, open_socket, "before the database refuses")
    with events_refused_where("true"):
        sent = [a.send(tid, f"while refused {n}") for n in range(4)]
        # Two rounds of tries: five of the batch, then one message at a time, then held.
        time.sleep(10)
        dead = take_dead_letters_where(POISON_QUEUE, lambda body: tid.encode() in body)
    assert dead == {}, f"events dead-lettered while the database refused every one: {sorted(dead)}"
    for message in sent:
        b.wait_for(named("message_created", tid, message["id"]), f"message_created for {message['body']!r}",
                   timeout=30)
    b.listen(0.5)
    kept = in_order(b.durable(), start=1, what="bob")
    assert [ev.message_id for ev in kept if ev.name == "message_created"] == (
        [before["id"]] + [message["id"] for message in sent])


def take_dead_letters_where(queue_name: str, matches: Callable[[bytes], bool]) -> dict[str, tuple[Any, bytes]]:
    """The messages of `queue_name` whose body `matches`, by message id; they are acked
    (removed), and the others go back to the queue when the channel closes."""
    return {properties.message_id or str(tag): (properties, body)
            for tag, properties, body in take_from(queue_name, lambda _, body: matches(body))}


def take_from(queue_name: str, matches: Callable[[Any, bytes], bool]) -> list[tuple[int, Any, bytes]]:
    """The messages of `queue_name` whose properties and body `matches`, with their delivery
    tags; they are acked (removed), and the others go back to the queue when the channel
    closes."""
    found: list[tuple[int, Any, bytes]] = []
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue_name, auto_ack=False)
            if method is None:
                return found
            if matches(properties, body):
                found.append((method.delivery_tag, properties, body))
                channel.basic_ack(method.delivery_tag)
    finally:
        connection.close()


def test_undecodable_user_events_are_parked_and_later_user_events_still_apply(account):
    """`messaging.users` has no dead-letter exchange (its arguments are fixed on running
    brokers): messaging publishes what it cannot read to `messaging.users.dead` itself, and
    acknowledges it only once that copy is confirmed."""
    marker = uuid.uuid4().hex
    poisons = {
        f"e2e-user-poison-{marker}-text": b"not json " + marker.encode(),
        f"e2e-user-poison-{marker}-shape": json.dumps({"type": "auth.user_created.v1", "data": {"hello": marker}}).encode(),
    }
    for message_id, body in poisons.items():
        publish_raw("auth.user_created.v1", body, message_id)

    # A user registered after the poison reaches messaging's directory all the same.
    later = account()
    deadline = time.monotonic() + 20
    while psql(f"SELECT count(*) FROM messaging.users WHERE id = '{later.id}'") != "1":
        assert time.monotonic() < deadline, "a user event behind the poison never reached messaging"
        time.sleep(0.2)

    parked = take_dead_letters(USER_EVENTS_POISON_QUEUE, set(poisons), timeout=20)
    assert set(parked) == set(poisons), f"not parked in {USER_EVENTS_POISON_QUEUE}: {sorted(set(poisons) - set(parked))}"
    for message_id, (properties, body) in parked.items():
        assert body == poisons[message_id], f"{message_id} changed on its way: {body[:200]!r}"
        assert properties.delivery_mode == 2, f"{message_id} was parked as a transient message"


# ================================================================================================
# 8. restarts (last: stops and starts services)
# ================================================================================================


def test_expired_events_leave_catch_up_at_once_and_are_pruned_by_the_periodic_job(account, open_socket):
    """The pruning job runs every DELIVERY_PRUNE_INTERVAL_SECONDS (2 s in the test environment)."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    tid = a.dm(bob.id)["id"]
    a.send(tid, "expires")
    deadline = time.time() + EVENT_TIMEOUT
    while psql(f"SELECT count(*) FROM delivery.deliveries WHERE user_id = '{bob.id}'") != "2":
        assert time.time() < deadline, "bob's deliveries were not recorded"
        time.sleep(0.1)
    # Bob was offline the whole time; his two events expire now (as after the retention period).
    psql(f"UPDATE delivery.deliveries SET expires_at = now() - interval '1 second' WHERE user_id = '{bob.id}'")
    b = open_socket(bob, last_seq=0, label="bob")
    assert b.sync(0)["events"] == []
    b.listen(1.0)
    assert b.durable() == [], f"expired events were replayed: {b.durable()}"
    deadline = time.time() + 15
    while psql(f"SELECT count(*) FROM delivery.deliveries WHERE user_id = '{bob.id}'") != "0":
        assert time.time() < deadline, "expired deliveries were not pruned"
        time.sleep(0.5)
    # Alice's deliveries of the same events are not expired and stay.
    assert psql(f"SELECT count(*) FROM delivery.deliveries WHERE user_id = '{alice.id}'") == "2"


def test_after_the_last_retry_the_push_is_dead_lettered_and_the_event_stays_for_catch_up(account, open_socket):
    """Delivery restarted with short retry delays (300 ms, 600 ms: delay queues of their own)."""
    alice, bob = account(), account()
    with delivery_started_with("short-retries", DELIVERY_RETRY_DELAYS_MS="300,600"):
        a = open_socket(alice, label="alice")
        tid = a.dm(bob.id)["id"]
        message = a.send(tid, "nobody acks this")
        created = a.wait_for(named("message_created", tid, message["id"]), "message_created")
        dead_id = f"{created.event_id}:{bob.id}"
        found = take_dead_letters("delivery.dead", {dead_id}, timeout=15)
        assert dead_id in found, f"no dead letter {dead_id} in delivery.dead"
        properties, body = found[dead_id]
        # The dead letter names the delivery, not what it said.
        letter = json.loads(body)
        assert letter == {
            "attempts": 3, "eventId": created.event_id, "seq": 2, "type": "MESSAGE_CREATED", "userId": bob.id}, letter
        assert properties.type == "delivery.dead_letter.v1", properties.type
        assert (properties.headers or {}).get("x-attempts") == 3, properties.headers
        # A dead letter expires with its event (DELIVERY_RETENTION_SECONDS, 7 days by default).
        assert properties.expiration == str(7 * 86_400 * 1000), properties.expiration
        # /metrics counts it, and the two pushes sent again before it (this process is new).
        admin = DELIVERY_READY_URL.removesuffix("/readyz")
        assert scrape_metric(admin, "delivery_dead_lettered_total") >= 1
        assert scrape_metric(admin, "delivery_redelivered_total") >= 2
        # Still buffered: Bob, connecting for the first time, gets it.
        b = open_socket(bob, last_seq=0, label="bob")
        ev = b.wait_for(named("message_created", tid, message["id"]), "the dead-lettered event on connect")
        assert ev.event_id == created.event_id and ev.seq == 2

        # Replayed (moved to delivery.due) after the message was deleted, the dead letter pushes
        # the delivery as the log has it now: erased, not the text it once pushed.
        a.ok("delete_message", {"messageIds": [message["id"]]})
        b.wait_for(named("bulk_message_deleted", tid), "bulk_message_deleted")
        since = b.mark()
        replay_dead_letter(properties, body)
        replayed = b.wait_for(lambda e: e.event_id == created.event_id, "the replayed dead letter", since=since)
        assert replayed.seq == 2 and replayed.message.get("body") == "" and replayed.message.get("deletedAt"), replayed.body
        # Acknowledged, the delivery is not pushed again by a replay.
        b.ack(2)
        since = b.mark()
        replay_dead_letter(properties, body)
        b.listen(2.0)
        again = [e for e in b.log[since:] if e.event_id == created.event_id]
        assert again == [], f"an acknowledged delivery was replayed: {again}"


def test_a_second_chain_of_retry_checks_for_an_event_ends_at_its_first_check(account, open_socket):
    """A domain event that comes again after its first retry check was confirmed (its ack lost)
    gets a second first check. That check finds the deliveries tried already, and ends: one
    dead letter, not two. Until the fifty-third session both chains pushed again at every
    level and each sent a dead letter (a review)."""
    alice, bob = account(), account()
    with delivery_started_with("retry-chains", DELIVERY_RETRY_DELAYS_MS="300,600"):
        a = open_socket(alice, label="alice")
        tid = a.dm(bob.id)["id"]
        message = a.send(tid, "retried by two chains")
        created = a.wait_for(named("message_created", tid, message["id"]), "message_created")
        # The second chain's first check, as the consumer would publish it for the event again.
        connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                "", "delivery.retry.300ms", json.dumps({"eventIds": [created.event_id], "attempt": 1}).encode(),
                pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                     message_id=f"{created.event_id}+0:1", type="delivery.retry_check.v1"),
                mandatory=True)
        finally:
            connection.close()
        dead_id = f"{created.event_id}:{bob.id}"
        letters, deadline = 0, time.monotonic() + 15
        while time.monotonic() < deadline and letters == 0:
            letters += count_and_take("delivery.dead", dead_id)
            time.sleep(0.2)
        assert letters >= 1, "no dead letter"
        time.sleep(3)  # both chains' last checks are long due (900 ms after their first)
        letters += count_and_take("delivery.dead", dead_id)
        assert letters == 1, f"{letters} dead letters for one delivery"


def count_and_take(queue_name: str, message_id: str) -> int:
    """How many messages of `queue_name` have `message_id`; they are acked (removed), the
    others go back to the queue when the channel closes."""
    return len(take_from(queue_name, lambda properties, _: properties.message_id == message_id))


def test_the_dead_letter_queue_keeps_at_most_100000_pushes_dropping_the_oldest():
    """Every event a user has not acknowledged after the last retry is dead-lettered, offline
    users' too, so `delivery.dead` must not grow without bound. A declaration with the same
    arguments is accepted and one with another bound refused (406): the queue has these."""
    queue_type = os.environ.get("RABBITMQ_QUEUE_TYPE", "classic")
    bound = {"x-queue-type": queue_type, "x-max-length": 100_000, "x-overflow": "drop-head"}
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        connection.channel().queue_declare("delivery.dead", durable=True, arguments=bound)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            connection.channel().queue_declare("delivery.dead", durable=True, arguments={**bound, "x-max-length": 99})
        assert refused.value.reply_code == 406, refused.value
    finally:
        connection.close()


def test_a_stock_client_whose_replay_delivery_cannot_serve_reconnects_by_itself_and_gets_it(account, open_socket):
    """The gateway closes the connection of a socket whose replay delivery does not answer
    (three tries), so that the client reconnects with its lastSeq. Closed with an Engine.IO
    close packet, as before the forty-first session, python-socketio took it for the server's
    goodbye and stayed offline for good."""
    alice, bob = account(), account()
    a = open_socket(alice, label="alice")
    tid = a.dm(bob.id)["id"]
    services("stop", "delivery")
    sio = socketio.Client(reconnection=True, reconnection_delay=0.5, reconnection_delay_max=1, randomization_factor=0)
    try:
        message = a.send(tid, "sent while delivery is down")
        connects: list[float] = []
        disconnects: list[float] = []
        received: queue.Queue = queue.Queue()
        sio.on("connect", lambda: connects.append(time.monotonic()))
        sio.on("disconnect", lambda *_args: disconnects.append(time.monotonic()))
        sio.on("message_created", lambda event: received.put(event))
        sio.connect(GATEWAY_URL, auth={"token": bob.access, "lastSeq": 0}, transports=["websocket"], wait_timeout=10)
        deadline = time.monotonic() + 60
        while not disconnects and time.monotonic() < deadline:
            time.sleep(0.2)
        assert disconnects, "the gateway kept a socket whose replay delivery could not serve"
        services("start", "delivery")
        wait_ready(DELIVERY_READY_URL)
        event = received.get(timeout=60)
        assert event["data"]["message"]["id"] == message["id"], event
        assert len(connects) >= 2, f"the client did not reconnect: connects {connects}, disconnects {disconnects}"
    finally:
        sio.disconnect()
        services("start", "delivery")


def test_restarting_delivery_and_the_gateway_loses_no_event(account, open_socket):
    alice, bob = account(), account()
    a, b = open_socket(alice, label="alice"), open_socket(bob, label="bob")
    tid = a.dm(bob.id)["id"]
    b.wait_for(named("conversation_created", tid), "conversation_created")

    passed = False
    try:
        # 1. Delivery down: messaging still answers; the events wait in RabbitMQ.
        services("stop", "delivery")
        down = [a.send(tid, f"while delivery is down {i}") for i in range(3)]
        b.listen(1.0)
        early = b.durable(where=named("message_created", tid))
        assert early == [], f"events reached bob while delivery was stopped: {early}"
        services("start", "delivery")
        wait_ready(DELIVERY_READY_URL)

        wanted = named("message_created", tid)
        live = b.gather(wanted, 3, timeout=45)
        b.listen(0.5)
        kept = in_order(b.durable(), start=1, what="bob")
        if len({ev.seq for ev in live}) < 3:
            warnings.warn(f"{len(live)} of 3 events came live after delivery's restart; reconnecting with lastSeq")
            last = kept[-1].seq
            b.sio.disconnect()
            b = open_socket(bob, last_seq=last, label="bob, reconnected after delivery's restart")
            b.collect(wanted, 3 - len({ev.seq for ev in live}), "message_created replayed after lastSeq", timeout=30)
            b.listen(0.5)
            kept += in_order(b.durable(), start=last + 1, what="bob, reconnected", had=kept)
        messages = [ev for ev in kept if ev.name == "message_created"]
        assert [ev.message_id for ev in messages] == [m["id"] for m in down], messages
        assert [ev.seq for ev in messages] == [2, 3, 4], messages
        assert b.ack(4) == 4

        # 2. One event pending for bob, who is offline, while the gateway restarts.
        b.sio.disconnect()
        pending = a.send(tid, "pending through the gateway's restart")
        a.wait_for(named("message_created", tid, pending["id"]), "alice's own message_created (delivery recorded it)")
        a.sio.disconnect()
        services("stop", "socket-gateway")
        services("start", "socket-gateway")
        wait_ready(GATEWAY_READY_URL)

        b2 = open_socket(bob, last_seq=4, label="bob after the gateway's restart")
        a2 = open_socket(alice, label="alice after the gateway's restart")
        replayed = b2.wait_for(named("message_created", tid, pending["id"]), "the pending message_created")
        assert replayed.seq == 5, replayed
        assert_same_message(replayed, pending)
        fresh = a2.send(tid, "live after the gateway's restart")
        arrived = b2.wait_for(named("message_created", tid, fresh["id"]), "the live message_created")
        assert arrived.seq == 6, arrived
        assert b2.ack(6) == 6
        b2.listen(0.5)
        kept = in_order(b2.durable(), start=5, what="bob after the gateway's restart")
        assert [ev.message_id for ev in kept] == [pending["id"], fresh["id"]], kept
        passed = True
    finally:
        # Whatever happened, leave both services running for the next tests.
        outcome = services("start", "delivery", "socket-gateway", check=False)
        problems = [p for p in (not_ready(DELIVERY_READY_URL), not_ready(GATEWAY_READY_URL)) if p]
        if passed and problems:
            pytest.fail(f"services not ready again after the test: {problems}; services.sh said: {outcome[-2000:]}")
