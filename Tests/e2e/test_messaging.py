"""Messaging through the gateway, end to end (protocol.md sections 2-4).

What is covered: the Socket.IO commands `create_conversation`, `create_message`,
`update_message`, `delete_message`, `add_reaction`, `remove_reaction`, `mark_seen` and
`typing` (acks, validation, permissions, idempotency, per-thread `seq` under concurrency),
the REST reads `GET /api/threads` and `GET /api/threads/:id/messages` (shapes, ordering,
cursors, unread counts, errors), and the domain events the messaging service publishes on
the RabbitMQ topic exchange `messenger.events` (routing key = event type).

How events are observed: an `EventTap` declares an exclusive, auto-delete, server-named
queue bound to `messenger.events` with `messaging.#` before the test acts, then consumes with
a deadline. Other tests may run against the same broker at the same time, so every check
filters on the test's own thread ids. "Exactly one event" is checked after a later event of
the same thread (a marker) has arrived, plus a short grace period. Envelope ids (`id`,
`actorId`) are compared case-insensitively everywhere but in one dedicated test, so that a
cosmetic difference there does not hide the rest of the checks.

Users: registration and login cost a bcrypt hash each, so the tests that only need distinct
members of GROUP threads share a module-scoped `crew` of five users (each test makes its own
threads, so they do not interfere). Tests whose outcome depends on a user's whole state (DM
pairs, which are unique per pair, and the caller's thread list) make fresh users.

Environment: GATEWAY_URL (default http://127.0.0.1:5000), RABBITMQ_URI (default
amqp://guest:guest@127.0.0.1:5673/%2f), E2E_ACK_TIMEOUT, E2E_EVENT_TIMEOUT.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import secrets
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pika
import pytest
import requests
import socketio

from e2e_support import (
    DATABASE_URL, RABBITMQ_URI, TIMESTAMP_RE, Api, assert_status, call_service, describe, not_ready, psql, publish_request,
    reply_bodies, scrape_metric, services, stop_process, unique_name,
)
from test_socketio import client

EVENTS_EXCHANGE = "messenger.events"
ACK_TIMEOUT = float(os.environ.get("E2E_ACK_TIMEOUT", "10"))
EVENT_TIMEOUT = float(os.environ.get("E2E_EVENT_TIMEOUT", "15"))
# How long to keep listening for an event that must NOT come (a duplicate, a typing echo).
QUIET_PERIOD = 1.0

# Client-facing event name -> routing key of the domain event.
ROUTING_KEYS = {
    "THREAD_CREATED": "messaging.thread_created.v1",
    "MESSAGE_CREATED": "messaging.message_created.v1",
    "MESSAGE_UPDATED": "messaging.message_updated.v1",
    "MESSAGES_DELETED": "messaging.messages_deleted.v1",
    "REACTION_ADDED": "messaging.reaction_added.v1",
    "REACTION_REMOVED": "messaging.reaction_removed.v1",
    "MESSAGE_SEEN": "messaging.message_seen.v1",
}

THREAD_KEYS = {"id", "type", "title", "createdBy", "memberIds", "createdAt"}
MESSAGE_KEYS = {
    "id", "threadId", "senderId", "clientMessageId", "seq", "body", "replyToId",
    "attachments", "reactions", "createdAt", "editedAt", "deletedAt",
}
NOT_A_MEMBER = ("forbidden", "not_found")  # protocol: forbidden, or not_found where existence is private


# --- small helpers ------------------------------------------------------------------------------


def short(value: Any, limit: int = 300) -> str:
    """repr() cut to `limit` characters, for failure messages about big payloads."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def new_id() -> str:
    return str(uuid.uuid4())


def cmid() -> str:
    """A fresh clientMessageId."""
    return f"c-{uuid.uuid4().hex}"


def assert_id(value: Any, what: str = "id") -> None:
    """A UUID string in lowercase (the contract's id form)."""
    assert isinstance(value, str), f"{what}: expected a UUID string, got {value!r}"
    uuid.UUID(value)
    assert value == value.lower(), f"{what}: expected a lowercase UUID, got {value!r}"


def assert_timestamp(value: Any, what: str) -> None:
    assert isinstance(value, str) and TIMESTAMP_RE.match(value), f"{what}: expected an RFC 3339 UTC ms timestamp, got {value!r}"


def ok(ack: Any, what: str = "command") -> dict[str, Any]:
    """Asserts a success ack `{"ok": true, "data": {...}}`; returns data."""
    assert isinstance(ack, dict) and ack.get("ok") is True, f"{what}: expected an ok ack, got {short(ack, 600)}"
    data = ack.get("data")
    assert isinstance(data, dict), f"{what}: ack data is not an object: {short(ack, 600)}"
    return data


def err(ack: Any, codes: str | Iterable[str], what: str = "command") -> str:
    """Asserts an error ack `{"ok": false, "error": {"code", "message"}}` with one of `codes`;
    returns the error's message."""
    wanted = {codes} if isinstance(codes, str) else set(codes)
    assert isinstance(ack, dict) and ack.get("ok") is False, f"{what}: expected an error ack {sorted(wanted)}, got {short(ack, 600)}"
    error = ack.get("error")
    assert isinstance(error, dict), f"{what}: error ack without an error object: {short(ack, 600)}"
    assert error.get("code") in wanted, f"{what}: expected error code in {sorted(wanted)}, got {short(ack, 600)}"
    assert isinstance(error.get("message"), str) and error["message"].strip(), f"{what}: error without a message: {short(ack)}"
    return error["message"]


def assert_rest_error(resp: requests.Response, statuses: int | Iterable[int], codes: str | Iterable[str]) -> None:
    """A REST error `{"error": {"code", "message"}}` with one of `statuses` and `codes`."""
    statuses = {statuses} if isinstance(statuses, int) else set(statuses)
    codes = {codes} if isinstance(codes, str) else set(codes)
    assert resp.status_code in statuses, f"expected HTTP {sorted(statuses)}: {describe(resp)}"
    assert resp.headers.get("Content-Type", "").startswith("application/json"), describe(resp)
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), describe(resp)
    assert body["error"].get("code") in codes, f"expected code in {sorted(codes)}: {describe(resp)}"
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"].strip(), describe(resp)


# --- resource shapes ----------------------------------------------------------------------------


def assert_thread(
    thread: Any,
    *,
    kind: str | None = None,
    members: Iterable[str] | None = None,
    created_by: str | None = None,
    title: Any = ...,
) -> None:
    """A `Thread`; `members` (the caller included) compare as a set; `title=...` skips the title."""
    assert isinstance(thread, dict), f"thread is not an object: {thread!r}"
    missing = THREAD_KEYS - set(thread)
    assert not missing, f"thread lacks {sorted(missing)}: {thread!r}"
    assert_id(thread["id"], "thread.id")
    assert thread["type"] in ("DM", "GROUP"), thread
    assert_id(thread["createdBy"], "thread.createdBy")
    assert_timestamp(thread["createdAt"], "thread.createdAt")
    assert isinstance(thread["memberIds"], list), thread
    for member in thread["memberIds"]:
        assert_id(member, "thread.memberIds[]")
    assert len(set(thread["memberIds"])) == len(thread["memberIds"]), f"duplicate member ids: {thread!r}"
    assert thread["createdBy"] in thread["memberIds"], f"the creator is not a member: {thread!r}"
    if thread["type"] == "DM":
        assert thread["title"] is None, f"a DM's title is null: {thread!r}"
        assert len(thread["memberIds"]) == 2, f"a DM has exactly two members: {thread!r}"
    else:
        assert isinstance(thread["title"], str) and 1 <= len(thread["title"]) <= 128, thread
    if kind is not None:
        assert thread["type"] == kind, thread
    if members is not None:
        assert set(thread["memberIds"]) == set(members), f"memberIds {thread['memberIds']} != {sorted(members)}"
    if created_by is not None:
        assert thread["createdBy"] == created_by, thread
    if title is not ...:
        assert thread["title"] == title, thread


def assert_message(
    message: Any,
    *,
    thread_id: str | None = None,
    sender_id: str | None = None,
    client_message_id: str | None = None,
    body: str | None = None,
    reply_to: Any = ...,
    deleted: bool | None = None,
    edited: bool | None = None,
) -> None:
    """A `Message`; a deleted one has body "", no attachments, no reactions and deletedAt set."""
    assert isinstance(message, dict), f"message is not an object: {message!r}"
    missing = MESSAGE_KEYS - set(message)
    assert not missing, f"message lacks {sorted(missing)}: {short(message)}"
    assert_id(message["id"], "message.id")
    assert_id(message["threadId"], "message.threadId")
    assert_id(message["senderId"], "message.senderId")
    assert isinstance(message["clientMessageId"], str) and message["clientMessageId"], message
    seq = message["seq"]
    assert isinstance(seq, int) and not isinstance(seq, bool) and seq >= 1, f"bad seq: {short(message)}"
    assert isinstance(message["body"], str), message
    if message["replyToId"] is not None:
        assert_id(message["replyToId"], "message.replyToId")
    assert isinstance(message["attachments"], list), message
    assert isinstance(message["reactions"], list), message
    for group in message["reactions"]:
        assert isinstance(group, dict) and isinstance(group.get("emojiHex"), str), f"bad reaction group: {message!r}"
        assert isinstance(group.get("userIds"), list) and group["userIds"], f"bad reaction group: {message!r}"
        assert len(set(group["userIds"])) == len(group["userIds"]), f"a user shows twice in a reaction: {message!r}"
    emojis = [group["emojiHex"] for group in message["reactions"]]
    assert len(set(emojis)) == len(emojis), f"an emoji has two reaction groups: {message!r}"
    assert_timestamp(message["createdAt"], "message.createdAt")
    if message["editedAt"] is not None:
        assert_timestamp(message["editedAt"], "message.editedAt")
    if message["deletedAt"] is not None:
        assert_timestamp(message["deletedAt"], "message.deletedAt")
    if thread_id is not None:
        assert message["threadId"] == thread_id, message
    if sender_id is not None:
        assert message["senderId"] == sender_id, message
    if client_message_id is not None:
        assert message["clientMessageId"] == client_message_id, message
    if body is not None:
        assert message["body"] == body, f"body {short(message['body'])} != {short(body)}"
    if reply_to is not ...:
        assert message["replyToId"] == reply_to, message
    if deleted is True:
        assert message["deletedAt"] is not None, f"expected deletedAt set: {message!r}"
        assert message["body"] == "" and message["attachments"] == [] and message["reactions"] == [], (
            f"a deleted message keeps no body, attachments or reactions: {message!r}")
    elif deleted is False:
        assert message["deletedAt"] is None, f"expected deletedAt null: {message!r}"
    if edited is True:
        assert message["editedAt"] is not None, f"expected editedAt set: {message!r}"
    elif edited is False:
        assert message["editedAt"] is None, f"expected editedAt null: {message!r}"


def core(message: dict[str, Any]) -> dict[str, Any]:
    """A message's contract fields (responses may add fields: additive evolution)."""
    return {key: message.get(key) for key in MESSAGE_KEYS}


def reactions_of(message: dict[str, Any]) -> dict[str, list[str]]:
    """emojiHex -> userIds of a message's reaction groups."""
    return {group["emojiHex"]: group["userIds"] for group in message["reactions"]}


# --- Socket.IO peers ----------------------------------------------------------------------------


@dataclass
class Peer:
    """One connected socket of one user."""

    account: Any
    sio: socketio.Client
    events: queue.Queue

    @property
    def id(self) -> str:
        return self.account.id

    def call(self, event: str, payload: Any = None, timeout: float = ACK_TIMEOUT) -> Any:
        """Emits with an ack and returns the ack (payload None sends no argument at all)."""
        try:
            return self.sio.call(event, payload, timeout=timeout)
        except socketio.exceptions.TimeoutError:
            pytest.fail(f"no ack for {event} {short(payload)} within {timeout} s (user {self.id})")

    def ok(self, event: str, payload: Any) -> dict[str, Any]:
        return ok(self.call(event, payload), f"{event} {short(payload)}")

    def refused(self, event: str, payload: Any, codes: str | Iterable[str]) -> str:
        return err(self.call(event, payload), codes, f"{event} {short(payload)}")

    # Shorthands for the common commands.

    def dm(self, other_id: str) -> dict[str, Any]:
        return self.ok("create_conversation", {"type": "DM", "memberIds": [other_id]})["thread"]

    def group(self, member_ids: Iterable[str], title: str = "e2e group") -> dict[str, Any]:
        payload = {"type": "GROUP", "memberIds": list(member_ids), "title": title}
        return self.ok("create_conversation", payload)["thread"]

    def send(self, thread_id: str, body: str = "hello", client_message_id: str | None = None, **extra: Any) -> dict[str, Any]:
        payload = {"threadId": thread_id, "clientMessageId": client_message_id or cmid(), "body": body, **extra}
        return self.ok("create_message", payload)["message"]

    def typing_events(self, thread_id: str, timeout: float, first_only: bool = False) -> list[dict[str, Any]]:
        """The `typing` events for `thread_id` that arrive within `timeout` seconds (only the first one
        with `first_only`)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0 and not (first_only and found):
            try:
                name, args = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            if name == "typing" and args and isinstance(args[0], dict) and args[0].get("threadId") == thread_id:
                found.append(args[0])
        return found

    def next_typing(self, thread_id: str, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        """The next `typing` event for `thread_id`; fails after `timeout`."""
        found = self.typing_events(thread_id, timeout, first_only=True)
        if not found:
            pytest.fail(f"user {self.id} got no typing event for thread {thread_id} within {timeout} s")
        return found[0]


@pytest.fixture
def connect() -> Iterable[Callable[..., Peer]]:
    """connect(account, transports=["websocket"], events=()) -> a connected Peer; every socket
    opened through it is closed after the test."""
    opened: list[socketio.Client] = []

    def _connect(account: Any, *, transports: list[str] | None = None, events: Iterable[str] = ()) -> Peer:
        sio, received = client(account.access, transports=transports or ["websocket"], events=list(events))
        opened.append(sio)
        return Peer(account, sio, received)

    yield _connect
    for sio in opened:
        try:
            sio.disconnect()
        except Exception:  # noqa: BLE001 - teardown of a socket that may already be gone
            pass


@pytest.fixture(scope="module")
def crew(module_account) -> list[Any]:
    """Five users shared by this module's GROUP-only tests (each test makes its own threads)."""
    return [module_account() for _ in range(5)]


# --- REST ---------------------------------------------------------------------------------------


def get_messages(api: Api, account: Any, thread_id: str, **params: Any) -> requests.Response:
    return api.get(f"/api/threads/{thread_id}/messages", token=account.access, params=params or None)


def messages_page(api: Api, account: Any, thread_id: str, **params: Any) -> dict[str, Any]:
    """One 200 page of a thread's messages; asserts the page's shape."""
    resp = get_messages(api, account, thread_id, **params)
    assert resp.status_code == 200, f"expected 200: {describe(resp)}"
    page = resp.json()
    assert isinstance(page, dict) and isinstance(page.get("items"), list), describe(resp)
    cursor = page.get("nextCursor")
    assert cursor is None or (isinstance(cursor, str) and cursor), f"bad nextCursor: {describe(resp)}"
    for item in page["items"]:
        assert_message(item, thread_id=thread_id)
    seqs = [item["seq"] for item in page["items"]]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs), f"page not newest first: seqs {seqs}"
    return page


def walk_messages(api: Api, account: Any, thread_id: str, limit: int = 100, expected: int | None = None) -> tuple[list[dict[str, Any]], list[int]]:
    """Every message of a thread, newest first, following `nextCursor` as `before`; also the
    page sizes. Every page but the last is full; one trailing empty page is tolerated."""
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    cursor: str | None = None
    max_pages = (expected // limit + 3) if expected is not None else 10_000
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["before"] = cursor
        page = messages_page(api, account, thread_id, **params)
        sizes.append(len(page["items"]))
        assert len(page["items"]) <= limit, f"page of {len(page['items'])} items for limit {limit}"
        items += page["items"]
        cursor = page.get("nextCursor")
        if cursor is None:
            break
        assert len(page["items"]) == limit, f"a page before the last one is not full: sizes {sizes}, cursor {cursor!r}"
        assert len(sizes) < max_pages, f"too many pages for {expected} messages at limit {limit}: sizes {sizes}"
    return items, sizes


def thread_page(api: Api, account: Any, **params: Any) -> dict[str, Any]:
    """One 200 page of GET /api/threads; asserts the summaries' shape."""
    resp = api.get("/api/threads", token=account.access, params=params or None)
    assert resp.status_code == 200, f"expected 200: {describe(resp)}"
    page = resp.json()
    assert isinstance(page, dict) and isinstance(page.get("items"), list), describe(resp)
    cursor = page.get("nextCursor")
    assert cursor is None or (isinstance(cursor, str) and cursor), f"bad nextCursor: {describe(resp)}"
    for summary in page["items"]:
        assert isinstance(summary, dict), summary
        assert_thread(summary.get("thread"))
        assert account.id in summary["thread"]["memberIds"], f"a thread the caller is not in: {summary!r}"
        unread = summary.get("unreadCount")
        assert isinstance(unread, int) and not isinstance(unread, bool) and unread >= 0, summary
        if summary.get("lastMessage") is not None:
            assert_message(summary["lastMessage"], thread_id=summary["thread"]["id"])
    return page


def summaries(api: Api, account: Any) -> dict[str, dict[str, Any]]:
    """thread id -> ThreadSummary, from one page of GET /api/threads."""
    return {s["thread"]["id"]: s for s in thread_page(api, account, limit=100)["items"]}


def unread(api: Api, account: Any, thread_id: str) -> int:
    found = summaries(api, account)
    assert thread_id in found, f"thread {thread_id} missing from {account.id}'s GET /api/threads"
    return found[thread_id]["unreadCount"]


# --- domain events on RabbitMQ ------------------------------------------------------------------


@dataclass
class DomainEvent:
    routing_key: str
    message_id: str | None
    body: dict[str, Any]

    @property
    def name(self) -> Any:
        return (self.body.get("data") or {}).get("name")

    @property
    def thread_id(self) -> Any:
        thread_id = (self.body.get("data") or {}).get("threadId")
        return thread_id.lower() if isinstance(thread_id, str) else thread_id

    @property
    def recipients(self) -> list[Any]:
        return (self.body.get("data") or {}).get("recipients") or []

    @property
    def payload(self) -> dict[str, Any]:
        """The client event data (`{"message": ...}`, `{"thread": ...}`, ...)."""
        inner = (self.body.get("data") or {}).get("data")
        return inner if isinstance(inner, dict) else {}


@dataclass
class EventTap:
    """A server-named exclusive queue bound to `messenger.events` with `messaging.#`."""

    binding: str = "messaging.#"
    received: list[DomainEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            self.connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
            self.channel = self.connection.channel()
            declared = self.channel.queue_declare(queue="", exclusive=True, auto_delete=True)
            self.queue = declared.method.queue
            self.channel.queue_bind(self.queue, EVENTS_EXCHANGE, routing_key=self.binding)
            self.channel.basic_consume(self.queue, self._on_message, auto_ack=True)
        except pika.exceptions.AMQPError as exc:
            pytest.fail(f"cannot listen on {EVENTS_EXCHANGE} at {RABBITMQ_URI}: {exc!r}", pytrace=False)

    def _on_message(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = {"undecodable": body[:200].decode("utf-8", "replace")}
        if isinstance(decoded, dict):
            self.received.append(DomainEvent(method.routing_key, properties.message_id, decoded))

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.connection.process_data_events(time_limit=min(remaining, 0.2))

    def matching(self, name: str, thread_id: str, where: Callable[[DomainEvent], bool] | None = None) -> list[DomainEvent]:
        return [
            ev for ev in self.received
            if ev.routing_key == ROUTING_KEYS[name] and ev.thread_id == thread_id.lower() and (where is None or where(ev))
        ]

    def wait(
        self,
        name: str,
        thread_id: str,
        where: Callable[[DomainEvent], bool] | None = None,
        count: int = 1,
        timeout: float = EVENT_TIMEOUT,
    ) -> list[DomainEvent]:
        """At least `count` events `name` of `thread_id` (and `where`); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(name, thread_id, where)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ours = [(ev.routing_key, ev.name) for ev in self.received if ev.thread_id == thread_id.lower()]
                pytest.fail(
                    f"{len(found)} of {count} {name} event(s) for thread {thread_id} within {timeout} s; "
                    f"this thread's events so far: {ours}")
            self.connection.process_data_events(time_limit=min(remaining, 0.2))

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - the broker may have closed it already
            pass


@pytest.fixture
def tap() -> Iterable[EventTap]:
    """Listens to messaging events from before the test acts until its end."""
    listener = EventTap()
    yield listener
    listener.close()


def event_message_id(ev: DomainEvent) -> Any:
    """The id of the message in a MESSAGE_CREATED / MESSAGE_UPDATED event, or None."""
    message = ev.payload.get("message")
    return message.get("id") if isinstance(message, dict) else None


def assert_envelope(ev: DomainEvent, name: str, thread_id: str, recipients: Iterable[str], actor_id: str | None = None) -> None:
    """The event's envelope: type = routing key, id = AMQP message_id, occurredAt, actorId and
    `data: {name, threadId, recipients, data}` with recipients compared as a set."""
    body = ev.body
    assert body.get("type") == ROUTING_KEYS[name] == ev.routing_key, f"type/routing key mismatch: {ev!r}"
    assert isinstance(body.get("id"), str), ev
    uuid.UUID(body["id"])
    assert ev.message_id is not None and ev.message_id.lower() == body["id"].lower(), (
        f"AMQP message_id {ev.message_id!r} != body id {body['id']!r}")
    assert_timestamp(body.get("occurredAt"), f"{name} occurredAt")
    if actor_id is not None:
        actor = body.get("actorId")
        assert isinstance(actor, str) and actor.lower() == actor_id, f"actorId {actor!r} != {actor_id}"
    data = body.get("data")
    assert isinstance(data, dict) and data.get("name") == name, f"data.name != {name}: {short(body, 800)}"
    assert ev.thread_id == thread_id, body
    got = [r.lower() if isinstance(r, str) else r for r in ev.recipients]
    assert len(set(got)) == len(got), f"duplicate recipients: {got}"
    assert set(got) == set(recipients), f"{name} recipients {sorted(got)} != {sorted(recipients)}"
    assert isinstance(data.get("data"), dict), f"{name} without client data: {short(body, 800)}"


# ================================================================================================
# 1. DMs
# ================================================================================================


def test_dm_is_created_once_per_pair_with_one_thread_created_event(account, connect, tap):
    alice, bob = account(), account()
    a, b = connect(alice), connect(bob)

    thread = a.dm(bob.id)
    assert_thread(thread, kind="DM", members={alice.id, bob.id}, created_by=alice.id, title=None)

    again = a.dm(bob.id)
    assert again["id"] == thread["id"], f"a repeated DM request made a second thread: {again!r} vs {thread!r}"
    reverse = b.dm(alice.id)
    assert reverse["id"] == thread["id"], f"the DM asked from the other side is another thread: {reverse!r}"
    assert_thread(reverse, kind="DM", members={alice.id, bob.id}, created_by=alice.id, title=None)

    created = tap.wait("THREAD_CREATED", thread["id"])[0]
    assert_envelope(created, "THREAD_CREATED", thread["id"], {alice.id, bob.id}, actor_id=alice.id)
    assert_thread(created.payload.get("thread"), kind="DM", members={alice.id, bob.id}, created_by=alice.id, title=None)
    assert created.payload["thread"]["id"] == thread["id"]

    # A later event of the same thread as a marker, then no second THREAD_CREATED.
    marker = a.send(thread["id"], "marker")
    tap.wait("MESSAGE_CREATED", thread["id"], where=lambda ev: event_message_id(ev) == marker["id"])
    tap.pump(QUIET_PERIOD)
    repeats = tap.matching("THREAD_CREATED", thread["id"])
    assert len(repeats) == 1, f"{len(repeats)} THREAD_CREATED events for one DM: {[ev.body for ev in repeats]}"


def test_event_envelope_ids_are_lowercase_and_match_the_amqp_message_id(crew, connect, tap):
    """The other event checks compare envelope ids case-insensitively so that they can test
    everything else; this one holds the envelope to the exact form: the body's `id` equals the
    AMQP message_id, and `id` / `actorId` are lowercase UUID strings like every id in JSON."""
    alice, bob = crew[0], crew[1]
    thread = connect(alice).group([bob.id], title="envelope ids")
    body = tap.wait("THREAD_CREATED", thread["id"])[0].body
    message_id = tap.matching("THREAD_CREATED", thread["id"])[0].message_id
    assert body.get("id") == message_id, f"body id {body.get('id')!r} != AMQP message_id {message_id!r} (exactly)"
    assert_id(body.get("id"), "envelope id")
    assert_id(body.get("actorId"), "envelope actorId")
    assert body["actorId"] == alice.id


TRACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def test_each_socket_command_has_a_correlation_id_of_its_own_that_its_event_carries(crew, connect, tap):
    """A Socket.IO packet has no headers, so the gateway starts a trace id for each command
    (docs/foundation.md, "Correlation ids"); the domain event the command causes carries it as
    its envelope's `correlationId`."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    thread = a.group([bob.id], title="correlation ids")
    messages = [a.send(thread["id"], "one"), a.send(thread["id"], "two")]
    ids = [tap.wait("THREAD_CREATED", thread["id"])[0].body.get("correlationId")]
    for message in messages:
        event = tap.wait("MESSAGE_CREATED", thread["id"], where=lambda ev, m=message: event_message_id(ev) == m["id"])[0]
        ids.append(event.body.get("correlationId"))
    for correlation_id in ids:
        assert TRACE_ID_RE.match(correlation_id or ""), f"correlationId {correlation_id!r} is not a W3C trace id"
    assert len(set(ids)) == 3, f"three commands, correlation ids {ids}"


def test_a_rest_requests_traceparent_follows_it_into_the_event_it_causes(api):
    """A client's W3C `traceparent`: its trace id is the request's correlation id, sent back in
    `X-Correlation-Id` and carried by the domain event the request causes (here auth's
    `user_created`, from `POST /api/users`). An invalid header starts a trace of the gateway's own."""
    tap = EventTap(binding="auth.user_created.v1")
    try:
        trace_id = secrets.token_hex(16)
        sent = {}
        for traceparent in (f"00-{trace_id}-{secrets.token_hex(8)}-01", f"00-{'0' * 32}-{secrets.token_hex(8)}-01"):
            username = unique_name()
            body = {"username": username, "email": f"{username.lower()}@e2e.example.com", "password": f"pw-{uuid.uuid4().hex}"}
            resp = api.post("/api/users", body, headers={"traceparent": traceparent})
            assert_status(resp, 201)
            sent[resp.json()["user"]["id"]] = resp.headers.get("X-Correlation-Id")
        (ours, user_id), (started, other_id) = [(cid, uid) for uid, cid in sent.items()]
        assert ours == trace_id, f"X-Correlation-Id {ours!r} is not the traceparent's trace id {trace_id!r}"
        assert TRACE_ID_RE.match(started or "") and started != trace_id, f"an all-zero trace id gave {started!r}"

        deadline = time.monotonic() + EVENT_TIMEOUT
        found: dict[str, Any] = {}
        while len(found) < 2 and time.monotonic() < deadline:
            tap.pump(0.2)
            for ev in tap.received:
                user = ev.body.get("data", {}).get("user") or {}
                if user.get("id") in sent:
                    found[user["id"]] = ev.body.get("correlationId")
        assert found.get(user_id) == trace_id, f"the user_created event carries {found.get(user_id)!r}, not {trace_id!r}"
        assert found.get(other_id) == started, f"the second event carries {found.get(other_id)!r}, not {started!r}"
    finally:
        tap.close()


def test_dm_refuses_self_unknown_and_wrong_member_counts(account, connect):
    alice, bob = account(), account()
    a = connect(alice)
    for member_ids in ([alice.id], [new_id()], [], [bob.id, new_id()]):
        a.refused("create_conversation", {"type": "DM", "memberIds": member_ids}, "invalid_argument")
    # The refusals did not break the pair: it still gets its DM.
    thread = a.dm(bob.id)
    assert_thread(thread, kind="DM", members={alice.id, bob.id}, created_by=alice.id)
    # As for a group, the caller and repeats are dropped: these name the one other user too.
    for member_ids in ([bob.id, bob.id], [bob.id, alice.id], [alice.id, bob.id.upper()]):
        again = a.ok("create_conversation", {"type": "DM", "memberIds": member_ids})["thread"]
        assert again["id"] == thread["id"], member_ids


def test_concurrent_dm_requests_from_both_sides_make_one_thread(account, connect):
    alice, bob = account(), account()
    peers = [connect(alice), connect(alice), connect(bob), connect(bob)]
    start = threading.Barrier(len(peers))
    acks: list[Any] = [None] * len(peers)

    def ask(i: int) -> None:
        other = bob.id if peers[i].account is alice else alice.id
        start.wait(timeout=10)
        acks[i] = peers[i].call("create_conversation", {"type": "DM", "memberIds": [other]})

    workers = [threading.Thread(target=ask, args=(i,), daemon=True) for i in range(len(peers))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=ACK_TIMEOUT + 10)
    assert all(not w.is_alive() for w in workers), "a concurrent create_conversation did not return"
    ids = {ok(ack, "concurrent DM")["thread"]["id"] for ack in acks}
    assert len(ids) == 1, f"concurrent DM requests for one pair made {len(ids)} threads: {ids}"


# ================================================================================================
# 2. GROUP validation
# ================================================================================================


def test_group_creation_and_validation(crew, connect):
    alice, bob, carol = crew[0], crew[1], crew[2]
    a = connect(alice)

    pair = a.group([bob.id], title="pair")  # the smallest group: creator + 1
    assert_thread(pair, kind="GROUP", members={alice.id, bob.id}, created_by=alice.id, title="pair")
    trio = a.group([bob.id, carol.id], title="t" * 128)
    assert_thread(trio, kind="GROUP", members={alice.id, bob.id, carol.id}, created_by=alice.id, title="t" * 128)
    assert trio["id"] != pair["id"]
    same_again = a.group([bob.id], title="pair")
    assert same_again["id"] != pair["id"], "groups are not deduplicated like DMs"

    bad_payloads = {
        "missing title": {"type": "GROUP", "memberIds": [bob.id]},
        "null title": {"type": "GROUP", "memberIds": [bob.id], "title": None},
        "empty title": {"type": "GROUP", "memberIds": [bob.id], "title": ""},
        "title over 128": {"type": "GROUP", "memberIds": [bob.id], "title": "t" * 129},
        "title not a string": {"type": "GROUP", "memberIds": [bob.id], "title": 5},
        # Shown as written, like a display name (a member is added without being asked).
        "title of a zero-width space": {"type": "GROUP", "memberIds": [bob.id], "title": "\u200b"},
        "title with a right-to-left override": {"type": "GROUP", "memberIds": [bob.id], "title": "a\u202eb"},
        "title with a control character": {"type": "GROUP", "memberIds": [bob.id], "title": "bell\u0007"},
        "no other member": {"type": "GROUP", "memberIds": [], "title": "x"},
        "only the creator": {"type": "GROUP", "memberIds": [alice.id], "title": "x"},
        # 257 members with the creator (the ids are unknown too: a server may name either).
        "over 256 members": {"type": "GROUP", "memberIds": [new_id() for _ in range(256)], "title": "x"},
        "unknown member": {"type": "GROUP", "memberIds": [bob.id, new_id()], "title": "x"},
        "member id not a uuid": {"type": "GROUP", "memberIds": [bob.id, "not-a-uuid"], "title": "x"},
        "member id a number": {"type": "GROUP", "memberIds": [123], "title": "x"},
        "memberIds a string": {"type": "GROUP", "memberIds": bob.id, "title": "x"},
        "memberIds missing": {"type": "GROUP", "title": "x"},
        "unknown type": {"type": "CHANNEL", "memberIds": [bob.id], "title": "x"},
        "type missing": {"memberIds": [bob.id], "title": "x"},
        "type a number": {"type": 1, "memberIds": [bob.id], "title": "x"},
    }
    for case, payload in bad_payloads.items():
        err(a.call("create_conversation", payload), "invalid_argument", f"create_conversation ({case})")
    for payload in ("GROUP", [bob.id], 42, None):
        err(a.call("create_conversation", payload), "invalid_argument", f"create_conversation with payload {payload!r}")


# ================================================================================================
# 3. create_message
# ================================================================================================


def test_create_message_shape_idempotency_and_one_event(api, crew, connect, tap):
    alice, bob = crew[0], crew[1]
    a, b = connect(alice), connect(bob)
    thread = a.group([bob.id], title="idempotency")

    client_id = cmid()
    first = a.send(thread["id"], "  hello there \n", client_id)
    assert_message(first, thread_id=thread["id"], sender_id=alice.id, client_message_id=client_id, body="hello there",
                   reply_to=None, deleted=False, edited=False)
    assert first["attachments"] == [] and first["reactions"] == []

    retry = a.send(thread["id"], "  hello there \n", client_id)
    assert core(retry) == core(first), f"a retry with the same clientMessageId differs:\n{retry!r}\n{first!r}"
    from_other_socket = connect(alice).send(thread["id"], "  hello there \n", client_id)
    assert from_other_socket["id"] == first["id"] and from_other_socket["seq"] == first["seq"]

    # The same clientMessageId from another user is another message.
    bobs = b.send(thread["id"], "bob's own", client_id)
    assert bobs["id"] != first["id"] and bobs["seq"] > first["seq"], (first, bobs)
    assert_message(bobs, sender_id=bob.id, client_message_id=client_id, body="bob's own")

    event = tap.wait("MESSAGE_CREATED", thread["id"], where=lambda ev: event_message_id(ev) == first["id"])[0]
    assert_envelope(event, "MESSAGE_CREATED", thread["id"], {alice.id, bob.id}, actor_id=alice.id)
    assert core(event.payload["message"]) == core(first), f"the event's message differs from the ack's: {event.payload!r}"
    tap.wait("MESSAGE_CREATED", thread["id"], where=lambda ev: event_message_id(ev) == bobs["id"])
    tap.pump(QUIET_PERIOD)
    events = tap.matching("MESSAGE_CREATED", thread["id"], lambda ev: event_message_id(ev) == first["id"])
    assert len(events) == 1, f"{len(events)} MESSAGE_CREATED events for one message sent three times"

    # GET shows it once.
    items = messages_page(api, alice, thread["id"])["items"]
    assert [m["id"] for m in items] == [bobs["id"], first["id"]], [short(m) for m in items]
    assert core(items[1]) == core(first)


def test_create_message_body_and_client_message_id_limits(crew, connect):
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    thread = a.group([bob.id], title="limits")
    tid = thread["id"]

    for body, expected in [
        ("a" * 4000, "a" * 4000),
        ("\U0001F600" * 4000, "\U0001F600" * 4000),  # 4000 code points (8000 UTF-16 units)
        ("  " + "b" * 4000 + " \n\t", "b" * 4000),  # the limit applies after trimming
        ("\u2003\u3000 unicode spaces \u00a0\u2029", "unicode spaces"),
        ("line one\n  line two", "line one\n  line two"),  # inner whitespace is kept
    ]:
        message = a.send(tid, body)
        assert message["body"] == expected, f"body {short(body)} stored as {short(message['body'])}"

    for case, body in [("empty", ""), ("spaces", "   "), ("whitespace only", " \n\t\u3000 "), ("4001 chars", "a" * 4001),
                       ("4001 code points", "\U0001F600" * 4001), ("not a string", 5), ("null", None)]:
        err(a.call("create_message", {"threadId": tid, "clientMessageId": cmid(), "body": body}), "invalid_argument",
            f"create_message with a {case} body")

    a.send(tid, "64-char client id", "x" * 64)
    for case, client_id in [("empty", ""), ("65 chars", "x" * 65), ("a number", 7), ("null", None)]:
        err(a.call("create_message", {"threadId": tid, "clientMessageId": client_id, "body": "hi"}), "invalid_argument",
            f"create_message with a {case} clientMessageId")
    err(a.call("create_message", {"threadId": tid, "body": "hi"}), "invalid_argument", "create_message without clientMessageId")
    err(a.call("create_message", {"clientMessageId": cmid(), "body": "hi"}), "invalid_argument", "create_message without threadId")
    err(a.call("create_message", {"threadId": 12, "clientMessageId": cmid(), "body": "hi"}), "invalid_argument",
        "create_message with a numeric threadId")
    for payload in ("hello", [tid, "hi"], 3, None):
        err(a.call("create_message", payload), "invalid_argument", f"create_message with payload {payload!r}")

    # A binary (a Socket.IO attachment) in a field the service does not know is ignored, like any
    # unknown field; in one it knows, it is the wrong type, and the error names the field.
    assert a.send(tid, "a binary beside me", extraBlob=b"\x01\x02", nested={"blob": b"\x03"})["body"] == "a binary beside me"
    message = err(a.call("create_message", {"threadId": tid, "clientMessageId": cmid(), "body": b"hi"}), "invalid_argument",
                  "create_message with a binary body")
    assert "body" in message, message


def test_create_message_membership_and_reply_to(api, crew, connect):
    alice, bob, outsider = crew[0], crew[1], crew[3]
    a, o = connect(alice), connect(outsider)
    thread = a.group([bob.id], title="replies")
    other = a.group([bob.id], title="elsewhere")

    original = a.send(thread["id"], "original")
    elsewhere = a.send(other["id"], "in another thread")

    o.refused("create_message", {"threadId": thread["id"], "clientMessageId": cmid(), "body": "let me in"}, NOT_A_MEMBER)
    o.refused("create_message", {"threadId": new_id(), "clientMessageId": cmid(), "body": "nowhere"}, NOT_A_MEMBER)
    a.refused("create_message", {"threadId": "not-a-uuid", "clientMessageId": cmid(), "body": "x"},
              ("invalid_argument", "not_found"))

    reply = a.send(thread["id"], "a reply", replyToId=original["id"])
    assert_message(reply, thread_id=thread["id"], reply_to=original["id"])
    a.refused("create_message", {"threadId": thread["id"], "clientMessageId": cmid(), "body": "x", "replyToId": elsewhere["id"]},
              "invalid_argument")
    a.refused("create_message", {"threadId": thread["id"], "clientMessageId": cmid(), "body": "x", "replyToId": new_id()},
              ("invalid_argument", "not_found"))
    a.refused("create_message", {"threadId": thread["id"], "clientMessageId": cmid(), "body": "x", "replyToId": 17},
              "invalid_argument")
    # A deleted message cannot be replied to (the reply would quote a tombstone).
    gone = a.send(other["id"], "soon deleted")
    a.ok("delete_message", {"messageIds": [gone["id"]]})
    a.refused("create_message", {"threadId": other["id"], "clientMessageId": cmid(), "body": "x", "replyToId": gone["id"]},
              "invalid_argument")

    # Nothing the outsider or the refused replies sent was stored.
    items = messages_page(api, alice, thread["id"])["items"]
    assert [m["id"] for m in items] == [reply["id"], original["id"]], [short(m) for m in items]
    assert items[0]["replyToId"] == original["id"]


# ================================================================================================
# 5. update and delete
# ================================================================================================


def test_update_and_delete_permissions_soft_delete_and_events(api, crew, connect, tap):
    alice, bob, outsider = crew[0], crew[1], crew[3]
    a, b, o = connect(alice), connect(bob), connect(outsider)
    thread = a.group([bob.id], title="edits")
    other = a.group([bob.id], title="other edits")
    tid = thread["id"]
    m1, m2, m3 = (a.send(tid, f"message {i}") for i in (1, 2, 3))
    foreign = a.send(other["id"], "in the other thread")
    ok(b.call("add_reaction", {"messageId": m2["id"], "emojiHex": "1f44d"}), "bob reacts to m2")

    # Only the author edits.
    b.refused("update_message", {"messageId": m1["id"], "body": "bob was here"}, "forbidden")
    o.refused("update_message", {"messageId": m1["id"], "body": "outsider"}, NOT_A_MEMBER)
    edited = a.ok("update_message", {"messageId": m1["id"], "body": "  edited  "})["message"]
    assert_message(edited, thread_id=tid, sender_id=alice.id, body="edited", edited=True, deleted=False)
    assert (edited["id"], edited["seq"], edited["createdAt"], edited["clientMessageId"]) == (
        m1["id"], m1["seq"], m1["createdAt"], m1["clientMessageId"]), f"an edit changed identity fields: {edited!r}"
    for case, body in [("empty", ""), ("whitespace", "  "), ("4001 chars", "x" * 4001), ("a number", 1)]:
        a.refused("update_message", {"messageId": m1["id"], "body": body}, "invalid_argument")
    a.refused("update_message", {"messageId": m1["id"]}, "invalid_argument")
    # The body a message has already (after trimming) edits nothing: no new editedAt, no event
    # (the count of MESSAGE_UPDATED below), and a message never edited stays unedited.
    assert a.ok("update_message", {"messageId": m1["id"], "body": "edited\n"})["message"] == edited
    unedited = a.ok("update_message", {"messageId": m3["id"], "body": "message 3"})["message"]
    assert_message(unedited, body="message 3", edited=False, deleted=False)

    # Only the author deletes; 1..100 ids, all in one thread.
    b.refused("delete_message", {"messageIds": [m1["id"]]}, "forbidden")
    o.refused("delete_message", {"messageIds": [m1["id"]]}, NOT_A_MEMBER)
    a.refused("delete_message", {"messageIds": [m3["id"], foreign["id"]]}, "invalid_argument")
    a.refused("delete_message", {"messageIds": []}, "invalid_argument")
    a.refused("delete_message", {"messageIds": [m3["id"]] + [new_id() for _ in range(100)]}, "invalid_argument")
    a.refused("delete_message", {"messageIds": m3["id"]}, "invalid_argument")
    a.refused("delete_message", {"messageIds": [42]}, "invalid_argument")
    a.refused("delete_message", {}, "invalid_argument")
    after_refusals = {m["id"]: m for m in messages_page(api, alice, tid)["items"]}
    assert after_refusals[m3["id"]]["deletedAt"] is None, "a refused delete_message deleted a message"
    assert messages_page(api, alice, other["id"])["items"][0]["deletedAt"] is None

    deleted = a.ok("delete_message", {"messageIds": [m1["id"], m2["id"]]})
    assert deleted.get("threadId") == tid, deleted
    assert isinstance(deleted.get("messageIds"), list) and set(deleted["messageIds"]) == {m1["id"], m2["id"]}, deleted

    a.refused("update_message", {"messageId": m1["id"], "body": "too late"}, "invalid_argument")

    by_id = {m["id"]: m for m in messages_page(api, bob, tid)["items"]}
    assert set(by_id) == {m1["id"], m2["id"], m3["id"]}, "a soft-deleted message left the history"
    for gone in (m1, m2):
        assert_message(by_id[gone["id"]], deleted=True, sender_id=alice.id)
        assert by_id[gone["id"]]["seq"] == gone["seq"], "a deleted message keeps its seq"
    assert_message(by_id[m3["id"]], body="message 3", deleted=False)

    # Events: one MESSAGE_UPDATED with the new body, one MESSAGES_DELETED, none for the refusals.
    updated_ev = tap.wait("MESSAGE_UPDATED", tid)[0]
    assert_envelope(updated_ev, "MESSAGE_UPDATED", tid, {alice.id, bob.id}, actor_id=alice.id)
    assert_message(updated_ev.payload.get("message"), body="edited", edited=True)
    assert updated_ev.payload["message"]["id"] == m1["id"]
    deleted_ev = tap.wait("MESSAGES_DELETED", tid)[0]
    assert_envelope(deleted_ev, "MESSAGES_DELETED", tid, {alice.id, bob.id}, actor_id=alice.id)
    assert deleted_ev.payload.get("threadId") == tid, deleted_ev.payload
    assert set(deleted_ev.payload.get("messageIds") or []) == {m1["id"], m2["id"]}, deleted_ev.payload
    tap.pump(QUIET_PERIOD)
    assert len(tap.matching("MESSAGE_UPDATED", tid)) == 1, "refused or unchanged updates published MESSAGE_UPDATED"
    assert len(tap.matching("MESSAGES_DELETED", tid)) == 1, "refused deletes published MESSAGES_DELETED"
    assert tap.matching("MESSAGES_DELETED", other["id"]) == [], "a refused cross-thread delete published an event"


# ================================================================================================
# 6. reactions
# ================================================================================================


def test_reactions_are_idempotent_validated_and_published_once(api, crew, connect, tap):
    alice, bob, outsider = crew[0], crew[1], crew[3]
    a, b, o = connect(alice), connect(bob), connect(outsider)
    thread = a.group([bob.id], title="reactions")
    tid = thread["id"]
    message = a.send(tid, "react to me")
    mid = message["id"]
    thumbs, family = "1f44d", "1f468-200d-1f469"

    for attempt in (1, 2):
        reaction = b.ok("add_reaction", {"messageId": mid, "emojiHex": thumbs}).get("reaction")
        assert isinstance(reaction, dict), f"add_reaction #{attempt} without a reaction: {reaction!r}"
        assert (reaction.get("messageId"), reaction.get("userId"), reaction.get("emojiHex")) == (mid, bob.id, thumbs), reaction
        assert_timestamp(reaction.get("createdAt"), "reaction.createdAt")
    reaction = a.ok("add_reaction", {"messageId": mid, "emojiHex": family})["reaction"]
    assert (reaction["messageId"], reaction["userId"], reaction["emojiHex"]) == (mid, alice.id, family), reaction
    a.ok("add_reaction", {"messageId": mid, "emojiHex": thumbs})
    # Leading zeros are one more spelling of the same code point: the same reaction, in the
    # contract's spelling.
    again = a.ok("add_reaction", {"messageId": mid, "emojiHex": "01f44d"})["reaction"]
    assert again["emojiHex"] == thumbs, again

    shown = messages_page(api, alice, tid)["items"][0]
    assert shown["id"] == mid
    groups = reactions_of(shown)
    assert set(groups) == {thumbs, family}, shown["reactions"]
    assert sorted(groups[thumbs]) == sorted([bob.id, alice.id]) and groups[family] == [alice.id], shown["reactions"]

    for bad in ("1F44D", "zz", "", "1f44d-", "-1f44d", "1f44d--1f3fb", "1f4 4d", "0x1f44d", "0", "1f44d-0", 128077, None):
        b.refused("add_reaction", {"messageId": mid, "emojiHex": bad}, "invalid_argument")
        b.refused("remove_reaction", {"messageId": mid, "emojiHex": bad}, "invalid_argument")
    b.refused("add_reaction", {"messageId": mid}, "invalid_argument")
    b.refused("add_reaction", {"messageId": 5, "emojiHex": thumbs}, "invalid_argument")
    b.refused("add_reaction", "1f44d", "invalid_argument")
    o.refused("add_reaction", {"messageId": mid, "emojiHex": thumbs}, NOT_A_MEMBER)
    o.refused("remove_reaction", {"messageId": mid, "emojiHex": family}, NOT_A_MEMBER)

    for attempt in (1, 2):
        removed = b.ok("remove_reaction", {"messageId": mid, "emojiHex": thumbs})
        assert (removed.get("messageId"), removed.get("emojiHex")) == (mid, thumbs), f"remove #{attempt}: {removed!r}"
    b.ok("remove_reaction", {"messageId": mid, "emojiHex": "1f600"})  # never added: still fine

    groups = reactions_of(messages_page(api, bob, tid)["items"][0])
    assert groups == {thumbs: [alice.id], family: [alice.id]}, groups

    # Events: REACTION_ADDED once for bob's thumbs (the second add changed nothing).
    def reaction_event(user_id: str, emoji: str) -> Callable[[DomainEvent], bool]:
        return lambda ev: (ev.payload.get("messageId"), ev.payload.get("userId"), ev.payload.get("emojiHex")) == (mid, user_id, emoji)

    added = tap.wait("REACTION_ADDED", tid, reaction_event(bob.id, thumbs))[0]
    assert_envelope(added, "REACTION_ADDED", tid, {alice.id, bob.id}, actor_id=bob.id)
    assert added.payload.get("threadId") == tid, added.payload
    removed_ev = tap.wait("REACTION_REMOVED", tid, reaction_event(bob.id, thumbs))[0]
    assert_envelope(removed_ev, "REACTION_REMOVED", tid, {alice.id, bob.id}, actor_id=bob.id)
    tap.wait("REACTION_ADDED", tid, reaction_event(alice.id, thumbs))  # a later event of the thread
    tap.pump(QUIET_PERIOD)
    repeats = tap.matching("REACTION_ADDED", tid, reaction_event(bob.id, thumbs))
    assert len(repeats) == 1, f"{len(repeats)} REACTION_ADDED events for one reaction added twice"


# ================================================================================================
# 8. unread counts, mark_seen, thread list ordering and paging
# ================================================================================================


def test_unread_counts_mark_seen_and_thread_ordering(api, account, connect, tap):
    alice, bob, carol = account(), account(), account()
    a, b, c = connect(alice), connect(bob), connect(carol)
    ab = b.dm(alice.id)["id"]

    sent = []
    for i in range(3):
        sent.append(b.send(ab, f"unread {i}"))
        time.sleep(0.01)
    summary = summaries(api, alice)[ab]
    assert summary["unreadCount"] == 3, summary
    assert (summary.get("lastMessage") or {}).get("id") == sent[2]["id"], summary
    assert unread(api, bob, ab) == 0, "a sender's own messages count as unread"

    seen = a.ok("mark_seen", {"threadId": ab, "messageId": sent[1]["id"]})
    assert (seen.get("threadId"), seen.get("messageId")) == (ab, sent[1]["id"]), f"mark_seen ack: {seen!r}"
    assert unread(api, alice, ab) == 1
    a.ok("mark_seen", {"threadId": ab, "messageId": sent[0]["id"]})
    assert unread(api, alice, ab) == 1, "mark_seen of an older message moved the seen mark back"
    a.ok("mark_seen", {"threadId": ab, "messageId": sent[2]["id"]})
    assert unread(api, alice, ab) == 0

    for payload in ({"threadId": ab}, {"messageId": sent[2]["id"]}, {"threadId": ab, "messageId": 5}, "x"):
        a.refused("mark_seen", payload, "invalid_argument")
    c.refused("mark_seen", {"threadId": ab, "messageId": sent[2]["id"]}, NOT_A_MEMBER)

    event = tap.wait("MESSAGE_SEEN", ab, lambda ev: ev.payload.get("messageId") == sent[1]["id"])[0]
    assert_envelope(event, "MESSAGE_SEEN", ab, {bob.id}, actor_id=alice.id)
    assert event.payload.get("userId") == alice.id and event.payload.get("threadId") == ab, event.payload
    assert_timestamp(event.payload.get("at"), "MESSAGE_SEEN at")
    latest = tap.wait("MESSAGE_SEEN", ab, lambda ev: ev.payload.get("messageId") == sent[2]["id"])[0]
    assert_envelope(latest, "MESSAGE_SEEN", ab, {bob.id}, actor_id=alice.id)

    # Own messages never count; the other side's unread count sees them.
    time.sleep(0.01)
    a.send(ab, "reply")
    assert unread(api, alice, ab) == 0
    assert unread(api, bob, ab) == 1

    # Ordering by newest activity across two threads.
    time.sleep(0.05)
    ac = c.dm(alice.id)["id"]
    c.send(ac, "hi from carol")
    page = thread_page(api, alice)
    assert [s["thread"]["id"] for s in page["items"]] == [ac, ab], [s["thread"]["id"] for s in page["items"]]
    assert page["items"][0]["unreadCount"] == 1 and page["items"][1]["unreadCount"] == 0, page["items"]
    assert page.get("nextCursor") is None, page
    time.sleep(0.05)
    last = b.send(ab, "bump")
    page = thread_page(api, alice)
    assert [s["thread"]["id"] for s in page["items"]] == [ab, ac], "a thread with a newer message does not come first"
    assert page["items"][0]["lastMessage"]["id"] == last["id"]
    assert page["items"][0]["unreadCount"] == 1

    # Cursor paging with limit=1.
    first = thread_page(api, alice, limit=1)
    assert [s["thread"]["id"] for s in first["items"]] == [ab], first
    assert first.get("nextCursor"), f"limit=1 with two threads has no nextCursor: {first!r}"
    second = thread_page(api, alice, limit=1, cursor=first["nextCursor"])
    assert [s["thread"]["id"] for s in second["items"]] == [ac], second
    if second.get("nextCursor") is not None:
        third = thread_page(api, alice, limit=1, cursor=second["nextCursor"])
        assert third["items"] == [] and third.get("nextCursor") is None, third


def test_replying_clears_the_unread_count_above_the_reply(api, account, connect):
    alice, bob = account(), account()
    a, b = connect(alice), connect(bob)
    tid = b.dm(alice.id)["id"]
    for i in range(3):
        b.send(tid, f"unread {i}")
    assert unread(api, alice, tid) == 3
    a.send(tid, "answering all three")
    assert unread(api, alice, tid) == 0, "a reply left the messages above it unread"
    b.send(tid, "after the reply")
    assert unread(api, alice, tid) == 1


def test_a_thread_summary_is_one_moment_while_messages_arrive(api, account, connect):
    """unreadCount never counts a message newer than the summary's lastMessage (the caller has
    marked nothing seen and sent nothing, so the two agree exactly)."""
    alice, bob = account(), account()
    b = connect(bob)
    tid = b.dm(alice.id)["id"]
    sending = threading.Event()
    sending.set()

    def send_all() -> None:
        try:
            for i in range(80):
                b.send(tid, f"burst {i}")
        finally:
            sending.clear()

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    polls = []
    while sending.is_set():
        summary = summaries(api, alice)[tid]
        last = summary.get("lastMessage")
        polls.append(((last or {}).get("seq", 0), summary["unreadCount"]))
    sender.join(timeout=60)
    assert polls and all(seq == count for seq, count in polls), [p for p in polls if p[0] != p[1]][:5]


def test_a_message_cursor_pages_only_the_thread_it_came_from(api, account, connect):
    """A `before` cursor of one thread is invalid_argument in another (it was taken there, and
    paged from a position that meant nothing in that thread, until the fortieth session). A
    cursor of the first format, which named no thread, still pages, so a client paging across
    an upgrade goes on."""
    alice, bob, carol = account(), account(), account()
    a = connect(alice)
    first, second = a.dm(bob.id)["id"], a.dm(carol.id)["id"]
    for n in range(3):
        a.send(first, f"first {n}")
        a.send(second, f"second {n}")
    cursor = messages_page(api, alice, first, limit=1)["nextCursor"]
    assert [m["body"] for m in messages_page(api, alice, first, limit=5, before=cursor)["items"]] == ["first 1", "first 0"]
    resp = get_messages(api, alice, second, before=cursor)
    assert_rest_error(resp, (400, 422), "invalid_argument")
    assert "before" in resp.json()["error"]["message"], resp.text
    newest_seq = messages_page(api, alice, second, limit=1)["items"][0]["seq"]
    old_format = base64.urlsafe_b64encode(f"m1:{newest_seq}".encode()).decode().rstrip("=")
    assert [m["body"] for m in messages_page(api, alice, second, before=old_format)["items"]] == ["second 1", "second 0"]


def test_an_empty_cursor_or_limit_is_the_first_page(api, account, connect):
    alice, bob = account(), account()
    b = connect(bob)
    tid = b.dm(alice.id)["id"]
    b.send(tid, "one")
    for path, name in (("/api/threads", "cursor"), (f"/api/threads/{tid}/messages", "before")):
        resp = api.get(f"{path}?{name}=&limit=", token=alice.access)
        assert resp.status_code == 200 and len(resp.json()["items"]) == 1, describe(resp)


# ================================================================================================
# 9. typing
# ================================================================================================


def test_typing_reaches_the_other_members_only(crew, connect):
    alice, bob, carol, outsider = crew[0], crew[1], crew[2], crew[3]
    typer = connect(alice, events=["typing"])
    alice_laptop = connect(alice, events=["typing"])
    b, c = connect(bob, events=["typing"]), connect(carol, events=["typing"])
    o = connect(outsider, events=["typing"])
    tid = typer.group([bob.id, carol.id], title="typing")["id"]

    for is_typing in (True, False):
        ack = typer.call("typing", {"threadId": tid, "isTyping": is_typing})
        assert ack == {"ok": True, "data": {}}, f"typing ack: {ack!r}"
        for peer in (b, c):
            event = peer.next_typing(tid)
            assert event.get("userId") == alice.id and event.get("isTyping") is is_typing, event
            assert "seq" not in event, f"typing is ephemeral and has no seq: {event!r}"
    for peer, who in ((typer, "the typer's socket"), (alice_laptop, "the typer's other socket"), (o, "a non-member")):
        echoes = peer.typing_events(tid, QUIET_PERIOD)
        assert echoes == [], f"{who} received typing events: {echoes}"
    for peer in (b, c):
        extra = peer.typing_events(tid, 0.2)
        assert extra == [], f"duplicate typing events: {extra}"

    o.refused("typing", {"threadId": tid, "isTyping": True}, NOT_A_MEMBER)
    for payload in ({"threadId": tid, "isTyping": "yes"}, {"threadId": tid}, {"isTyping": True}, "typing"):
        typer.refused("typing", payload, "invalid_argument")
    assert b.typing_events(tid, 0.5) == [], "a refused typing command reached a member"


# ================================================================================================
# 10. REST errors
# ================================================================================================


def test_rest_reads_errors(api, crew, connect):
    alice, bob, outsider = crew[0], crew[1], crew[3]
    a = connect(alice)
    tid = a.group([bob.id], title="rest errors")["id"]
    a.send(tid, "one")

    for path in ("/api/threads", f"/api/threads/{tid}/messages"):
        assert_rest_error(api.get(path), 401, "unauthorized")
        assert_rest_error(api.get(path, token="not.a.token"), 401, "unauthorized")

    assert_rest_error(get_messages(api, outsider, tid), (403, 404), NOT_A_MEMBER)
    assert_rest_error(get_messages(api, alice, new_id()), 404, "not_found")
    assert_rest_error(get_messages(api, alice, "not-a-uuid"), 404, "not_found")

    for limit in (0, 101, -1, "x", "1.5"):
        assert_rest_error(get_messages(api, alice, tid, limit=limit), (400, 422), "invalid_argument")
        resp = api.get("/api/threads", token=alice.access, params={"limit": limit})
        assert_rest_error(resp, (400, 422), "invalid_argument")
    for cursor in ("garbage", "%%%not-a-cursor%%%", "aGVsbG8", "eyJ4Ijo"):
        resp = get_messages(api, alice, tid, before=cursor)
        assert_rest_error(resp, (400, 422), "invalid_argument")
        assert "before" in resp.json()["error"]["message"], resp.text
        resp = api.get("/api/threads", token=alice.access, params={"cursor": cursor})
        assert_rest_error(resp, (400, 422), "invalid_argument")
        assert "cursor" in resp.json()["error"]["message"], resp.text

    assert len(messages_page(api, alice, tid, limit=100)["items"]) == 1
    assert len(messages_page(api, bob, tid, limit=1)["items"]) == 1
    thread_page(api, alice, limit=100)


# ================================================================================================
# 11. the polling transport
# ================================================================================================


def test_commands_over_long_polling(api, crew, connect):
    alice, bob = crew[0], crew[1]
    a = connect(alice, transports=["polling"])
    assert a.sio.transport() == "polling"
    thread = a.group([bob.id], title="polling")
    assert_thread(thread, kind="GROUP", members={alice.id, bob.id})
    message = a.send(thread["id"], "over polling", replyToId=None)
    assert_message(message, thread_id=thread["id"], sender_id=alice.id, body="over polling", reply_to=None)
    a.ok("add_reaction", {"messageId": message["id"], "emojiHex": "2764-fe0f"})
    a.ok("mark_seen", {"threadId": thread["id"], "messageId": message["id"]})
    assert a.call("typing", {"threadId": thread["id"], "isTyping": True}) == {"ok": True, "data": {}}
    a.refused("create_message", {"threadId": thread["id"], "clientMessageId": cmid(), "body": " "}, "invalid_argument")
    shown = messages_page(api, bob, thread["id"])["items"]
    assert [m["id"] for m in shown] == [message["id"]]
    assert reactions_of(shown[0]) == {"2764-fe0f": [alice.id]}


# The two heavy tests come last: every message they send is also an unacknowledged event for its
# members, which the delivery service replays to each new socket of those users.


# ================================================================================================
# 4. seq under concurrent senders
# ================================================================================================


def send_concurrently(peers: list[Any], payloads: Callable[[int], list[dict[str, Any]]]) -> list[list[tuple[dict[str, Any], Any]]]:
    """Every peer sends its `payloads(i)` as `create_message`, one after the other, all peers at
    once from a barrier; returns each peer's (payload, ack) pairs in order."""
    start = threading.Barrier(len(peers))
    results: list[list[tuple[dict[str, Any], Any]]] = [[] for _ in peers]
    failures: list[str] = []

    def run(i: int) -> None:
        try:
            start.wait(timeout=30)
            for payload in payloads(i):
                results[i].append((payload, peers[i].sio.call("create_message", payload, timeout=30)))
        except Exception as exc:  # noqa: BLE001 - reported below with the socket's index
            failures.append(f"socket {i}: {exc!r}")

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(peers))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert not any(w.is_alive() for w in workers), "senders still running after 120 s"
    assert not failures, failures
    return results


def test_seq_is_unique_and_contiguous_under_20_concurrent_senders(api, crew, connect):
    sockets_per_user, per_socket = 4, 10
    owner = connect(crew[0])
    tid = owner.group([u.id for u in crew[1:]], title="concurrent seq")["id"]
    peers = [connect(user) for user in crew for _ in range(sockets_per_user)]
    results = send_concurrently(peers, lambda i: [
        {"threadId": tid, "clientMessageId": f"s{i}-n{n}-{uuid.uuid4().hex[:8]}", "body": f"socket {i} #{n}"}
        for n in range(per_socket)
    ])

    acked: dict[str, dict[str, Any]] = {}
    for i, sent in enumerate(results):
        seqs = []
        for payload, ack in sent:
            message = ok(ack, f"socket {i} create_message {payload['clientMessageId']}")["message"]
            assert_message(message, thread_id=tid, client_message_id=payload["clientMessageId"], body=payload["body"],
                           sender_id=peers[i].id)
            acked[message["id"]] = message
            seqs.append(message["seq"])
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"socket {i}: its own messages out of order: {seqs}"
    total = len(peers) * per_socket
    assert len(acked) == total, f"{total} sends acked with {len(acked)} distinct message ids"
    ack_seqs = sorted(m["seq"] for m in acked.values())
    assert ack_seqs == list(range(1, total + 1)), f"acked seqs are not 1..{total}: duplicates or gaps in {ack_seqs}"

    items, _ = walk_messages(api, crew[0], tid, limit=100, expected=total)
    assert len(items) == total, f"GET returned {len(items)} messages, {total} sent"
    seqs = [m["seq"] for m in items]
    assert seqs == list(range(total, 0, -1)), f"stored seqs are not {total}..1: {seqs}"
    for stored in items:
        assert stored["id"] in acked, f"unknown message in the thread: {stored!r}"
        mine = acked[stored["id"]]
        assert (stored["seq"], stored["body"], stored["senderId"]) == (mine["seq"], mine["body"], mine["senderId"]), (stored, mine)


def test_retries_mixed_with_new_messages_of_concurrent_senders_return_their_originals(crew, connect):
    # A batch is written first without looking for retries; a retry in it makes the unique index
    # refuse the batch, which is written again with the lookup. The other messages of that batch
    # must come out as if nothing had happened: each once, seqs without gaps.
    owner = connect(crew[0])
    tid = owner.group([u.id for u in crew[1:]], title="retries in batches")["id"]
    peers = [connect(user) for user in crew for _ in range(2)]
    # Every second send retries the one before (the same clientMessageId).
    results = send_concurrently(peers, lambda i: [
        {"threadId": tid, "clientMessageId": f"r{i}-{n // 2}", "body": f"socket {i} #{n // 2}"} for n in range(12)
    ])

    by_client_id: dict[str, dict[str, Any]] = {}
    for i, sent in enumerate(results):
        for payload, ack in sent:
            client_id = payload["clientMessageId"]
            message = ok(ack, f"socket {i} create_message {client_id}")["message"]
            first = by_client_id.setdefault(client_id, message)
            assert (message["id"], message["seq"]) == (first["id"], first["seq"]), f"a retry differs: {message!r} {first!r}"
    total = len(peers) * 6
    assert len(by_client_id) == total
    assert sorted(m["seq"] for m in by_client_id.values()) == list(range(1, total + 1))


def start_second_messaging_replica() -> tuple[subprocess.Popen, str]:
    """Starts another messaging process on the same database and queues (admin port 9112);
    returns it and its admin URL once it is ready. RabbitMQ hands the commands to the two in
    turn."""
    root = Path(__file__).resolve().parents[2]
    binary = Path(os.environ.get("MESSENGER_BIN_DIR", root / ".build" / "debug")) / "messaging"
    admin = "http://127.0.0.1:9112"
    env = dict(os.environ, MESSAGING_ADMIN_PORT="9112", ENV_FILE="/dev/null")
    log = open(root / ".run" / "logs" / "messaging-second-replica.log", "w")
    replica = subprocess.Popen([str(binary)], env=env, stdout=log, stderr=subprocess.STDOUT)
    problem = not_ready(f"{admin}/readyz", 60, replica)
    if problem:
        replica.kill()
        pytest.fail(f"the second messaging replica: {problem}")
    return replica, admin


def create_message_requests_served(admin: str) -> int:
    """The `create_message` commands a replica answered, from its /metrics."""
    return int(scrape_metric(admin, "rpc_server_requests_total", type="messaging.create_message.v1"))


def test_two_replicas_writing_one_thread_keep_seq_contiguous_and_time_ordered(api, crew, connect):
    # Each replica plans a batch from what it last wrote to the thread (docs/messaging.md, "One
    # round trip"); with two replicas taking turns, that is stale every other message, and the
    # unique (thread_id, seq) index must send those batches the locked way.
    replica, admin = start_second_messaging_replica()
    try:
        owner = connect(crew[0])
        tid = owner.group([u.id for u in crew[1:]], title="two replicas")["id"]
        sequential = [ok(owner.sio.call("create_message", {"threadId": tid, "clientMessageId": f"t{n}", "body": f"#{n}"},
                                        timeout=30), f"create_message t{n}")["message"] for n in range(30)]
        assert [m["seq"] for m in sequential] == list(range(1, 31)), [m["seq"] for m in sequential]
        peers = [connect(user) for user in crew for _ in range(2)]
        results = send_concurrently(peers, lambda i: [
            {"threadId": tid, "clientMessageId": f"c{i}-{n}", "body": f"socket {i} #{n}"} for n in range(10)
        ])
        concurrent = [ok(ack, f"socket {i} {payload['clientMessageId']}")["message"]
                      for i, sent in enumerate(results) for payload, ack in sent]
        total = 30 + len(concurrent)
        by_seq = sorted(sequential + concurrent, key=lambda m: m["seq"])
        assert [m["seq"] for m in by_seq] == list(range(1, total + 1)), "duplicates or gaps in the acked seqs"
        times = [m["createdAt"] for m in by_seq]
        assert times == sorted(times), "createdAt goes backwards as seq grows"
        stored, _ = walk_messages(api, crew[0], tid, limit=100, expected=total)
        assert sorted((m["seq"], m["id"], m["createdAt"]) for m in stored) == [
            (m["seq"], m["id"], m["createdAt"]) for m in by_seq], "the stored messages differ from the acked ones"
        # A retry through either replica returns the original.
        again = ok(owner.sio.call("create_message", {"threadId": tid, "clientMessageId": "t3", "body": "#3"}, timeout=30),
                   "retry of t3")["message"]
        assert (again["id"], again["seq"]) == (sequential[3]["id"], 4)
        assert create_message_requests_served(admin) > 0, "the second replica answered no create_message"
    finally:
        stop_process(replica)


# ================================================================================================
# 7. paging through 1,000 messages
# ================================================================================================


def send_pipelined(peer: Peer, thread_id: str, bodies: list[str], window: int = 200, timeout: float = 240) -> list[dict[str, Any]]:
    """Sends create_message for every body without waiting for each ack (at most `window`
    unacknowledged at a time); returns the acked messages in sending order."""
    acks: list[Any] = [None] * len(bodies)
    slots = threading.Semaphore(window)
    lock = threading.Lock()
    done = threading.Event()
    pending = [len(bodies)]

    def on_ack(i: int) -> Callable[..., None]:
        def callback(*args: Any) -> None:
            acks[i] = args[0] if args else None
            slots.release()
            with lock:
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()
        return callback

    deadline = time.monotonic() + timeout
    for i, body in enumerate(bodies):
        if not slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            pytest.fail(f"only {len(bodies) - pending[0]} of {len(bodies)} create_message acks within {timeout} s")
        peer.sio.emit("create_message", {"threadId": thread_id, "clientMessageId": f"p-{i}", "body": body}, callback=on_ack(i))
    if not done.wait(timeout=max(0.0, deadline - time.monotonic())):
        pytest.fail(f"only {len(bodies) - pending[0]} of {len(bodies)} create_message acks within {timeout} s")
    return [ok(ack, f"pipelined create_message #{i}")["message"] for i, ack in enumerate(acks)]


def test_paging_through_1000_messages(api, account, connect):
    alice, bob = account(), account()
    a = connect(alice)
    tid = a.group([bob.id], title="a thousand")["id"]
    bodies = [f"m{i:04d}" for i in range(1000)]
    sent = send_pipelined(a, tid, bodies)
    assert [m["body"] for m in sent] == bodies
    sent_seqs = [m["seq"] for m in sent]
    assert all(x < y for x, y in zip(sent_seqs, sent_seqs[1:])), "one socket's messages were not stored in sending order"
    newest_first = [m["id"] for m in reversed(sent)]

    default_page = messages_page(api, bob, tid)
    assert [m["id"] for m in default_page["items"]] == newest_first[:50], "the default limit is 50, newest first"
    assert default_page.get("nextCursor"), "a first page of 1,000 messages has a nextCursor"

    for limit in (100, 37):
        items, sizes = walk_messages(api, bob, tid, limit=limit, expected=1000)
        ids = [m["id"] for m in items]
        assert len(ids) == len(set(ids)), f"limit {limit}: {len(ids) - len(set(ids))} messages repeated across pages"
        assert ids == newest_first, (
            f"limit {limit}: pages are not the 1,000 messages newest first without gaps "
            f"({len(ids)} items, {len(set(ids) & set(newest_first))} known; page sizes {sizes})")
        seqs = [m["seq"] for m in items]
        assert all(x > y for x, y in zip(seqs, seqs[1:])), f"limit {limit}: seqs not strictly descending"
        assert [m["body"] for m in items] == bodies[::-1]


# --- odd input and races ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["body", "clientMessageId"])
def test_nul_in_a_message_is_invalid_argument(crew, connect, field):
    a = connect(crew[0])
    tid = a.group([crew[1].id], title="nul")["id"]
    payload = {"threadId": tid, "clientMessageId": cmid(), "body": "hello", field: "a\u0000b"}
    assert field in a.refused("create_message", payload, "invalid_argument")
    assert "title" in a.refused(
        "create_conversation", {"type": "GROUP", "memberIds": [crew[1].id], "title": "a\u0000b"}, "invalid_argument")


def test_a_lone_surrogate_in_a_body_becomes_the_replacement_character(crew, connect):
    # python-socketio writes "\ud83d" as JSON's escape, as JSON.stringify does for a string
    # cut inside an emoji; the command is understood and the socket stays open.
    a = connect(crew[0])
    tid = a.group([crew[1].id], title="surrogate")["id"]
    message = a.send(tid, "cut \ud83d")
    assert message["body"] == "cut \ufffd"
    assert a.sio.connected


def test_sixteen_thousand_ids_for_delete_are_refused_at_once(crew, connect):
    a = connect(crew[0])
    ids = [new_id() for _ in range(16_000)]
    assert "messageIds" in a.refused("delete_message", {"messageIds": ids}, "invalid_argument")
    assert a.ok("ping", "still here") == {"pong": "still here"}
    # The ids as sent count, repeats included: 101 are refused though 100 are distinct (until
    # the fifty-fourth session they were counted after the repeats were dropped; a review).
    tid = a.group([crew[1].id], title="a hundred and one")["id"]
    mid = a.send(tid, "once")["id"]
    assert "messageIds" in a.refused("delete_message", {"messageIds": [mid] * 101}, "invalid_argument")
    assert a.ok("delete_message", {"messageIds": [mid] * 100})["messageIds"] == [mid]


def test_a_message_has_at_most_20_different_emoji_and_each_may_be_used_by_every_member(api, crew, connect):
    """A message carries its reactions in every page, thread summary and event: 20 different
    emoji at most (docs/messaging.md), each of which every member may add."""
    alice, bob = crew[0], crew[1]
    a, b = connect(alice), connect(bob)
    tid = a.group([bob.id], title="many reactions")["id"]
    mid = a.send(tid, "react a lot")["id"]
    emoji = [format(0x1F600 + n, "x") for n in range(21)]
    for hex_ in emoji[:20]:
        a.ok("add_reaction", {"messageId": mid, "emojiHex": hex_})
    said = a.refused("add_reaction", {"messageId": mid, "emojiHex": emoji[20]}, "invalid_argument")
    assert "20" in said, said
    b.refused("add_reaction", {"messageId": mid, "emojiHex": emoji[20]}, "invalid_argument")
    # One already there is not one more: bob adds it, and alice adds hers again.
    b.ok("add_reaction", {"messageId": mid, "emojiHex": emoji[0]})
    a.ok("add_reaction", {"messageId": mid, "emojiHex": emoji[0]})
    groups = reactions_of(messages_page(api, alice, tid)["items"][0])
    assert set(groups) == set(emoji[:20]) and sorted(groups[emoji[0]]) == sorted([alice.id, bob.id]), groups
    # A removal makes room again.
    a.ok("remove_reaction", {"messageId": mid, "emojiHex": emoji[19]})
    a.ok("add_reaction", {"messageId": mid, "emojiHex": emoji[20]})
    # A message from before the bound, with 25 emoji: joining one of them adds no emoji (until
    # the fifty-second session it was refused, as the message counted over 20), a new one does.
    legacy = a.send(tid, "from before the bound")["id"]
    psql("INSERT INTO messaging.reactions (message_id, user_id, emoji_hex, created_at) "
         f"SELECT '{legacy}', '{alice.id}', to_hex(65536 + e), now() FROM generate_series(0, 24) AS e")
    b.ok("add_reaction", {"messageId": legacy, "emojiHex": format(65536 + 3, "x")})
    b.refused("add_reaction", {"messageId": legacy, "emojiHex": emoji[0]}, "invalid_argument")


def unacknowledged_events(peer: Peer) -> list[dict[str, Any]]:
    """Every event the peer's user has not acknowledged, page after page of `sync`."""
    events: list[dict[str, Any]] = []
    after, more = 0, True
    while more:
        page = peer.ok("sync", {"afterSeq": after, "limit": 500})
        events += page["events"]
        more = page["hasMore"] and bool(page["events"])
        after = events[-1]["seq"] if events else after
    return events


def test_a_reaction_members_may_not_be_shown_is_refused_and_one_stored_before_stays_removable(crew, connect):
    """`emojiHex` holds what every member is shown: a line feed or a right-to-left override is
    refused as it is in a group's title. One stored before that rule (the fifty-fourth
    session's; a review) can still be removed."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    tid = a.group([bob.id], title="shown reactions")["id"]
    mid = a.send(tid, "react")["id"]
    for hex_ in ("a", "202e", "200b"):
        assert "emojiHex" in a.refused("add_reaction", {"messageId": mid, "emojiHex": hex_}, "invalid_argument")
    psql(f"INSERT INTO messaging.reactions (message_id, user_id, emoji_hex, created_at) "
         f"VALUES ('{mid}', '{alice.id}', '202e', now())")
    a.ok("remove_reaction", {"messageId": mid, "emojiHex": "202e"})
    assert psql(f"SELECT count(*) FROM messaging.reactions WHERE message_id = '{mid}'") == "0"


def test_different_emoji_added_at_once_still_keep_to_20(api, crew, connect):
    """30 sockets add 30 different emoji to one message at the same moment. Adds lock the
    message's row exclusively, so each counts the emoji of the adds before it; until the
    thirty-ninth session the lock was shared and an outside tester stored 25."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    tid = a.group([bob.id], title="emoji at once")["id"]
    mid = a.send(tid, "react at once")["id"]
    sockets = [connect(alice) for _ in range(30)]
    start = threading.Barrier(len(sockets))
    replies: list[Any] = [None] * len(sockets)

    def add(n: int) -> None:
        start.wait()
        replies[n] = sockets[n].call("add_reaction", {"messageId": mid, "emojiHex": format(0x1F600 + n, "x")})

    adding = [threading.Thread(target=add, args=(n,)) for n in range(len(sockets))]
    for thread in adding:
        thread.start()
    for thread in adding:
        thread.join(timeout=ACK_TIMEOUT * 3)
    accepted = [reply for reply in replies if reply and reply.get("ok") is True]
    refused = [reply["error"]["code"] for reply in replies if reply and reply.get("ok") is False]
    assert len(accepted) == 20 and refused == ["invalid_argument"] * 10, replies
    assert len(reactions_of(messages_page(api, alice, tid)["items"][0])) == 20


def test_an_edit_racing_a_reaction_removal_carries_the_reactions_as_they_are(api, crew, connect):
    """Bob removes his reaction while Alice edits the message, 20 times. The edit's event
    carries the message's reactions; replayed in seq order, the events must end where the
    message is. Until the thirty-ninth session a removal took no lock on the message: the edit
    read the reaction before the removal committed and recorded its event after it, so every
    client brought the removed reaction back (an outside tester saw 26 of 40 so)."""
    alice, bob = crew[0], crew[1]
    a, b = connect(alice), connect(bob)
    tid = a.group([bob.id], title="edit and unreact")["id"]
    messages = [a.send(tid, f"edit me {n}")["id"] for n in range(20)]
    for n, mid in enumerate(messages):
        b.ok("add_reaction", {"messageId": mid, "emojiHex": "1f44d"})
        start = threading.Barrier(2)

        def unreact(mid=mid) -> None:
            start.wait()
            b.ok("remove_reaction", {"messageId": mid, "emojiHex": "1f44d"})

        removing = threading.Thread(target=unreact)
        removing.start()
        start.wait()
        a.ok("update_message", {"messageId": mid, "body": f"edited {n}"})
        removing.join(timeout=ACK_TIMEOUT)
    # Alice's log: each message's add, removal and edit (delivery records them in seq order).
    wanted = {"REACTION_ADDED", "REACTION_REMOVED", "MESSAGE_UPDATED"}
    deadline = time.monotonic() + 30
    while True:
        events = unacknowledged_events(a)
        mine = [event for event in events if event["type"] in wanted and event["data"].get("threadId", tid) == tid]
        if len(mine) >= 3 * len(messages) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    state: dict[str, set[tuple[str, str]]] = {mid: {("1f44d", bob.id)} for mid in messages}
    for event in sorted(mine, key=lambda event: event["seq"]):
        data = event["data"]
        if event["type"] == "MESSAGE_UPDATED":
            message = data["message"]
            state[message["id"]] = {(emoji, user) for emoji, users in reactions_of(message).items() for user in users}
        elif event["type"] == "REACTION_ADDED":
            state[data["messageId"]].add((data["emojiHex"], data["userId"]))
        else:
            state[data["messageId"]].discard((data["emojiHex"], data["userId"]))
    stale = [mid for mid in messages if state[mid]]
    assert stale == [], f"{len(stale)} of {len(messages)} messages got their removed reaction back from the events"
    assert all(reactions_of(item) == {} for item in messages_page(api, alice, tid)["items"] if item["id"] in messages)


def test_concurrent_edits_carry_editedat_in_the_order_of_their_events(crew, connect):
    """12 edits of one message at once from two sockets, 4 times: in seq order each
    message_updated has a later editedAt than the one before, and the last is the message as it
    stays. Until the thirty-ninth session editedAt was the transaction's start: an edit that
    waited for another's lock carried the earlier time."""
    alice, bob = crew[0], crew[1]
    a, a2 = connect(alice), connect(alice)
    tid = a.group([bob.id], title="edits at once")["id"]
    messages = []
    for round_ in range(4):
        mid = a.send(tid, f"start {round_}")["id"]
        messages.append(mid)
        start = threading.Barrier(12)

        def edit(n: int, mid=mid) -> None:
            start.wait()
            (a if n % 2 else a2).ok("update_message", {"messageId": mid, "body": f"v{n}"})

        editing = [threading.Thread(target=edit, args=(n,)) for n in range(12)]
        for thread in editing:
            thread.start()
        for thread in editing:
            thread.join(timeout=ACK_TIMEOUT * 2)
    deadline = time.monotonic() + 30
    while True:
        events = unacknowledged_events(a)
        edits = [event for event in events if event["type"] == "MESSAGE_UPDATED"
                 and event["data"]["message"]["id"] in messages]
        if len(edits) >= 12 * len(messages) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(edits) == 12 * len(messages)
    for mid in messages:
        stamps = [event["data"]["message"]["editedAt"] for event in sorted(edits, key=lambda event: event["seq"])
                  if event["data"]["message"]["id"] == mid]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps


def test_canonically_equivalent_client_message_ids_in_one_batch_are_two_messages(api, crew, connect):
    """Three sockets of Alice: one sends a message while the other two send clientMessageIds
    that differ only in Unicode normalization ("café" as NFC and as NFD) with different bodies,
    15 times, so that they often land in one batch. They are different ids (as the table's
    unique index compares them, byte for byte), so each is its own message. Until the fortieth
    session the batch compared them as Swift strings, which are equal: the second was answered
    with the first's message and its own body was never stored (12 of 15 in a reviewer's run)."""
    alice, bob = crew[0], crew[1]
    sockets = [connect(alice) for _ in range(3)]
    tid = sockets[0].dm(bob.id)["id"]
    for round_ in range(15):
        nfc, nfd = f"caf{round_}\u00e9", f"caf{round_}e\u0301"
        replies: list[Any] = [None] * 3
        start = threading.Barrier(3)

        def send(n: int, client_id: str, body: str) -> None:
            start.wait()
            replies[n] = sockets[n].ok("create_message", {"threadId": tid, "clientMessageId": client_id, "body": body})

        senders = [threading.Thread(target=send, args=args) for args in
                   ((0, f"warm {round_}", "warm"), (1, nfc, f"NFC {round_}"), (2, nfd, f"NFD {round_}"))]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(timeout=ACK_TIMEOUT)
        first, second = replies[1]["message"], replies[2]["message"]
        assert (first["clientMessageId"], first["body"]) == (nfc, f"NFC {round_}"), first
        assert (second["clientMessageId"], second["body"]) == (nfd, f"NFD {round_}"), second
        assert first["id"] != second["id"], f"round {round_}: the NFD command was answered with the NFC message"
    stored = [item["body"] for item in messages_page(api, alice, tid, limit=100)["items"]]
    assert len(stored) == 45 and sum(body.startswith("NFD") for body in stored) == 15, stored


def test_a_delete_racing_an_edit_is_no_earlier_than_the_edit(crew, connect):
    """Alice edits a message from one socket and deletes it from another at the same moment, 30
    times. When the edit went first, the deletion's deletedAt is no earlier than the edit's
    editedAt. Until the fortieth session a delete took `now()`, its transaction's start, so one
    that waited for the edit's lock carried an earlier time than the edit clients saw before."""
    alice, bob = crew[0], crew[1]
    a, a2 = connect(alice), connect(alice)
    tid = a.group([bob.id], title="edit and delete")["id"]
    messages = [a.send(tid, f"edit then delete {n}")["id"] for n in range(30)]
    for n, mid in enumerate(messages):
        start = threading.Barrier(2)

        def edit(mid=mid, n=n) -> None:
            start.wait()
            a2.call("update_message", {"messageId": mid, "body": f"edited {n}"})

        editing = threading.Thread(target=edit)
        editing.start()
        start.wait()
        a.ok("delete_message", {"messageIds": [mid]})
        editing.join(timeout=ACK_TIMEOUT)
    deadline = time.monotonic() + 30
    while True:
        events = unacknowledged_events(a)
        deletions = {event["data"]["messageIds"][0]: event for event in events
                     if event["type"] == "MESSAGES_DELETED" and event["data"]["messageIds"][0] in messages}
        if len(deletions) == len(messages) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(deletions) == len(messages)
    edits = {event["data"]["message"]["id"]: event for event in events
             if event["type"] == "MESSAGE_UPDATED" and event["data"]["message"]["id"] in messages}
    assert edits, "no edit went before its delete in 30 tries"
    earlier = [(edit["data"]["message"]["editedAt"], deletions[mid]["data"]["deletedAt"]) for mid, edit in edits.items()
               if deletions[mid]["data"]["deletedAt"] < edit["data"]["message"]["editedAt"]]
    assert earlier == [], f"{len(earlier)} of {len(edits)} deletes were earlier than the edit before them: {earlier}"


def test_a_reaction_racing_the_delete_of_its_message_does_not_outlive_it(crew, connect):
    a, b = connect(crew[0]), connect(crew[1])
    tid = a.group([crew[1].id], title="reaction race")["id"]
    messages = [a.send(tid, f"to delete {n}") for n in range(8)]
    for message in messages:
        start = threading.Barrier(2)

        def react(message=message) -> None:
            start.wait()
            b.call("add_reaction", {"messageId": message["id"], "emojiHex": "1f44d"})

        reacting = threading.Thread(target=react)
        reacting.start()
        start.wait()
        a.ok("delete_message", {"messageIds": [message["id"]]})
        reacting.join(timeout=ACK_TIMEOUT)
    ids = ", ".join(f"'{message['id']}'" for message in messages)
    assert psql(f"SELECT count(*) FROM messaging.reactions WHERE message_id IN ({ids})") == "0"


def test_a_reply_waits_for_a_delete_of_its_target_under_way_and_is_refused(crew, connect):
    """A delete of the message Bob replies to is under way: a psql session has done what
    `delete_message` does first (locked the row `FOR NO KEY UPDATE`, marked it deleted) and has
    not committed. The reply must wait for it and then be refused, as a reply to a deleted
    message is. Until the forty-second session the batch read its reply targets without a lock
    (and the foreign key's check takes one the delete's does not block): the reply saw the
    message not yet deleted and was stored pointing to a message deleted a moment later."""
    alice, bob = crew[0], crew[1]
    a, b = connect(alice), connect(bob)
    tid = a.group([bob.id], title="reply to a message being deleted")["id"]
    target = a.send(tid, "about to be deleted")["id"]
    holder = hold_in_psql(
        f"e2e-reply-race-{uuid.uuid4().hex[:12]}",
        f"SELECT id FROM messaging.messages WHERE id = '{target}' FOR NO KEY UPDATE;\n"
        f"UPDATE messaging.messages SET body = '', deleted_at = clock_timestamp() WHERE id = '{target}';\n")
    replies: list[Any] = []
    try:
        payload = {"threadId": tid, "clientMessageId": cmid(), "body": "a reply", "replyToId": target}
        replying = threading.Thread(target=lambda: replies.append(b.call("create_message", payload)))
        replying.start()
        replying.join(timeout=1.5)
        waited = replying.is_alive()
    finally:
        release_psql(holder)
    replying.join(timeout=ACK_TIMEOUT)
    assert replies, f"no ack for the reply within {ACK_TIMEOUT} s of the delete's commit"
    err(replies[0], "invalid_argument", "a reply to a message whose delete was under way")
    assert waited, "the reply was answered while the delete of its target was under way, without waiting for it"


def test_replies_racing_the_delete_of_their_target_come_before_it_or_are_refused(crew, connect):
    """Alice deletes a message while Bob replies to it, 30 times at once. Each reply is either
    refused (it came after the delete: a deleted message cannot be replied to) or stored, and
    then it came before the delete: its MESSAGE_CREATED precedes the MESSAGES_DELETED of its
    target in Alice's event log (seq order). A reply read its target without a lock until the
    forty-second session, and could be stored after the delete had marked its target deleted."""
    alice, bob = crew[0], crew[1]
    a, b = connect(alice), connect(bob)
    tid = a.group([bob.id], title="replies and deletes")["id"]
    targets = [a.send(tid, f"reply to me {n}")["id"] for n in range(30)]
    replies: dict[str, Any] = {}
    for n, target in enumerate(targets):
        start = threading.Barrier(2)

        def reply(target=target, n=n) -> None:
            start.wait()
            replies[target] = b.call(
                "create_message", {"threadId": tid, "clientMessageId": cmid(), "body": f"reply {n}", "replyToId": target})

        replying = threading.Thread(target=reply)
        replying.start()
        start.wait()
        a.ok("delete_message", {"messageIds": [target]})
        replying.join(timeout=ACK_TIMEOUT)
    assert len(replies) == len(targets), f"{len(targets) - len(replies)} replies got no ack"
    stored: dict[str, str] = {}  # target -> reply id
    for target, ack in replies.items():
        if isinstance(ack, dict) and ack.get("ok") is False:
            err(ack, "invalid_argument", f"a reply to {target}")
        else:
            message = ok(ack, f"a reply to {target}")["message"]
            assert message["replyToId"] == target, message
            stored[target] = message["id"]

    deadline = time.monotonic() + 30
    while True:
        events = unacknowledged_events(a)
        seq_of_delete = {event["data"]["messageIds"][0]: event["seq"] for event in events
                         if event["type"] == "MESSAGES_DELETED" and event["data"]["messageIds"][0] in targets}
        seq_of_reply = {event["data"]["message"]["id"]: event["seq"] for event in events
                        if event["type"] == "MESSAGE_CREATED" and event["data"]["message"]["id"] in stored.values()}
        if (len(seq_of_delete) == len(targets) and len(seq_of_reply) == len(stored)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(seq_of_delete) == len(targets), f"{len(seq_of_delete)} of {len(targets)} MESSAGES_DELETED events arrived"
    assert len(seq_of_reply) == len(stored), f"{len(seq_of_reply)} of {len(stored)} stored replies' events arrived"
    late = [target for target, reply_id in stored.items() if seq_of_reply[reply_id] > seq_of_delete[target]]
    assert late == [], (f"{len(late)} of {len(stored)} stored replies came after the delete of their target "
                        f"({len(targets) - len(stored)} were refused)")


def hold_in_psql(name: str, statements: str) -> subprocess.Popen:
    """A psql session (application_name `name`) that runs `statements` in an open transaction
    and keeps it open until `COMMIT;` is written to its stdin (or it is killed: its transaction
    rolls back). Returns once the last statement has run."""
    holder = subprocess.Popen(
        ["psql", DATABASE_URL, "-X", "-q", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PGAPPNAME": name})
    assert holder.stdin is not None
    holder.stdin.write("BEGIN;\n" + statements + "SELECT 'held';\n")
    holder.stdin.flush()
    deadline = time.monotonic() + 15
    while psql(f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' "
               "AND state = 'idle in transaction' AND query LIKE 'SELECT ''held''%'") != "1":
        if holder.poll() is not None:
            pytest.fail(f"psql exited with {holder.returncode}: {holder.stderr.read() if holder.stderr else ''}")
        if time.monotonic() > deadline:
            holder.kill()
            pytest.fail(f"psql did not run {statements!r} within 15 s")
        time.sleep(0.05)
    return holder


def release_psql(holder: subprocess.Popen) -> None:
    """Commits a ``hold_in_psql`` session's transaction and waits for psql to end."""
    if holder.poll() is None and holder.stdin is not None and not holder.stdin.closed:
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
    try:
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


def test_create_message_commands_whose_callers_gave_up_during_a_stall_are_not_written(api, crew, connect):
    """Messaging's writes stall (a psql session holds `messaging.outbox` locked, which every
    message's write waits for). The batch writers are taken by "plug" commands sent first; a
    backlog sent after them straight to messaging, by callers that wait 1 s (the requests'
    `expiration`), waits in the batcher past that. When a writer is free again (the plugs' lock
    waits end at messaging's `lock_timeout`, the RPC timeout), the backlog must not be written: a
    command whose caller gave up fails `unavailable`, and the client's retry with the same
    clientMessageId writes it (once). Until the forty-second session the writers wrote the whole
    stale backlog before any fresh command.

    Assumes one messaging replica with MESSAGING_BATCH_WRITERS writers (2 by default); it stalls
    every messaging write for some seconds."""
    writers = int(os.environ.get("MESSAGING_BATCH_WRITERS", "2"))
    rpc_timeout = int(os.environ.get("RPC_TIMEOUT_MS", "5000")) / 1000
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    # Threads this replica has written to, so their writes take the one-statement way, which
    # waits for the table lock.
    plug_threads = [a.group([bob.id], title=f"plug {n}")["id"] for n in range(writers + 2)]
    backlog_thread = a.group([bob.id], title="backlog")["id"]
    for tid in plug_threads + [backlog_thread]:
        a.send(tid, "before the stall")
    plugs = [connect(alice) for _ in plug_threads]
    backlog_ids = [f"backlog {n} {uuid.uuid4().hex[:8]}" for n in range(6)]

    def send(peer: Peer, tid: str, client_id: str) -> None:
        try:
            peer.sio.call("create_message", {"threadId": tid, "clientMessageId": client_id, "body": client_id},
                          timeout=rpc_timeout + 10)
        except socketio.exceptions.TimeoutError:
            pass

    holder = hold_in_psql(f"e2e-stall-{uuid.uuid4().hex[:12]}", "LOCK TABLE messaging.outbox IN EXCLUSIVE MODE;\n")
    senders: list[threading.Thread] = []
    answers: list[dict[str, Any]] = []
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    try:
        channel = connection.channel()
        replies = channel.queue_declare("", exclusive=True).method.queue
        channel.confirm_delivery()
        # A wait on the lock ends at messaging's lock_timeout (half the RPC timeout), and a writer
        # freed before the backlog's 1 s has passed would take it while its caller still waits
        # (and write it once the lock is released): the writers counted must have begun their
        # waits less than this long ago.
        fresh = rpc_timeout / 2 - 2.0

        def waiting_writers() -> int:
            return int(psql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO messages%' "
                            f"AND clock_timestamp() - query_start < interval '{fresh} seconds'"))

        # One plug at a time, each sent once the one before waits on the lock, so that each is a
        # batch of its own and takes a writer; the last two queue behind them. The backlog comes
        # only once every writer waits, however slow the machine.
        deadline = time.monotonic() + 20
        for n, (peer, tid) in enumerate(zip(plugs, plug_threads)):
            senders.append(threading.Thread(target=send, args=(peer, tid, f"plug {n} {uuid.uuid4().hex[:8]}")))
            senders[-1].start()
            if n < writers:
                while waiting_writers() < n + 1:
                    assert time.monotonic() < deadline, f"{n + 1} batch writers did not wait on the lock within 20 s"
                    time.sleep(0.02)
            else:
                time.sleep(0.1)
        while waiting_writers() < writers:
            assert time.monotonic() < deadline, f"{writers} batch writers did not wait on the lock within 20 s"
            time.sleep(0.02)
        for client_id in backlog_ids:
            publish_request(channel, "messaging", "messaging.create_message.v1",
                            {"threadId": backlog_thread, "clientMessageId": client_id, "body": client_id},
                            reply_to=replies, expiration_ms=1000, actor=alice.id, correlation_id=client_id)
        time.sleep(2.0)  # the backlog's callers have given up; the writers still wait
    finally:
        release_psql(holder)
    try:
        for _method, properties, reply in channel.consume(replies, auto_ack=True, inactivity_timeout=rpc_timeout + 15):
            if reply is None:
                break
            # Replies ready at one moment come as one MessageBatch (docs/foundation.md).
            answers += [json.loads(body) for body in reply_bodies(properties, reply)]
            if len(answers) >= len(backlog_ids):
                break
    finally:
        connection.close()
    for thread in senders:
        thread.join(timeout=rpc_timeout + 10)
    assert len(answers) == len(backlog_ids), answers
    for answer in answers:
        assert answer["ok"] is False and answer["error"]["code"] == "unavailable", answer

    time.sleep(1.0)
    stored = [item["body"] for item in messages_page(api, alice, backlog_thread)["items"]]
    assert stored == ["before the stall"], (
        f"{len(stored) - 1} of the {len(backlog_ids)} commands whose callers had given up were written "
        f"after the stall: {stored}")

    # The client's retry writes it, once.
    retried = ok(a.call("create_message", {"threadId": backlog_thread, "clientMessageId": backlog_ids[0],
                                           "body": backlog_ids[0]}), "the retry")["message"]
    assert retried["clientMessageId"] == backlog_ids[0]
    again = ok(a.call("create_message", {"threadId": backlog_thread, "clientMessageId": backlog_ids[0],
                                         "body": backlog_ids[0]}), "the retry's retry")["message"]
    assert again["id"] == retried["id"]
    assert len(messages_page(api, alice, backlog_thread)["items"]) == 2

    # Messaging is whole after the stall: messages written at once (on several connections) are
    # stored, and their events (the outbox relay's) reach the recipient. Until the sixty-first
    # session a statement first prepared on a connection during the stall failed there for good
    # (postgres-nio remembered the failed preparation): writes on that connection, or the relay,
    # failed `unavailable` until messaging restarted.
    b = connect(bob)
    after = [a.group([bob.id], title=f"after the stall {n}")["id"] for n in range(6)]
    written: dict[str, Any] = {}

    def send_after(tid: str) -> None:
        written[tid] = a.call("create_message", {"threadId": tid, "clientMessageId": cmid(), "body": "after"})

    senders = [threading.Thread(target=send_after, args=(tid,)) for tid in after]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(timeout=ACK_TIMEOUT)
    ids = {ok(written.get(tid), f"a message after the stall to {tid}")["message"]["id"] for tid in after}
    deadline = time.monotonic() + 30
    while True:
        created = {event["data"]["message"]["id"] for event in unacknowledged_events(b)
                   if event["type"] == "MESSAGE_CREATED"}
        if ids <= created or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ids <= created, f"{len(ids - created)} of {len(ids)} messages' events did not arrive within 30 s"


def send_behind_held_rows(api: Api, reader: Any, hold_sql: str, name: str, first: list[tuple[Peer, dict]],
                          queued: list[tuple[Peer, dict]], free: str) -> tuple[dict[str, Any], list[str]]:
    """While a psql session holds rows (`hold_sql`, as a replica frozen inside its transaction
    would), sends `first`'s commands one at a time, so that each takes a batch writer of its own,
    then `queued`'s together behind them (written as one batch), and reads the thread `free`'s
    messages while the rows are still held. Returns each command's answer by its body, and
    those messages' bodies."""
    rpc_timeout = int(os.environ.get("RPC_TIMEOUT_MS", "5000")) / 1000
    answers: dict[str, Any] = {}

    def send(peer: Peer, payload: dict) -> None:
        answers[payload["body"]] = peer.call("create_message", {**payload, "clientMessageId": cmid()},
                                             timeout=rpc_timeout + 10)

    holder = hold_in_psql(f"{name}-{uuid.uuid4().hex[:12]}", hold_sql)
    senders: list[threading.Thread] = []
    try:
        for peer, payload in first:
            senders.append(threading.Thread(target=send, args=(peer, payload)))
            senders[-1].start()
            time.sleep(0.3)
        for peer, payload in queued:
            senders.append(threading.Thread(target=send, args=(peer, payload)))
        for thread in senders[len(first):]:
            thread.start()
        for thread in senders:
            thread.join(timeout=rpc_timeout + 15)
        stored_while_locked = [item["body"] for item in messages_page(api, reader, free)["items"]]
    finally:
        release_psql(holder)
    return answers, stored_while_locked


def test_a_thread_locked_by_a_frozen_writer_fails_only_its_own_messages(api, crew, connect):
    """A psql session holds thread rows locked (`FOR UPDATE`), as a replica that froze inside its
    batch's transaction would. Each batch writer first takes a message to one of those threads;
    a message to another thread and one more to a locked thread queue behind them, and are
    written together in one batch. The free thread's message must be stored while the lock is
    held, and only the locked threads' messages answered `unavailable`. Until the forty-fifth
    session a batch waited for a lock as long as its callers waited, and then failed whole: the
    free thread's message was refused too, for as long as the holder held the lock.

    Assumes one messaging replica with MESSAGING_BATCH_WRITERS writers (2 by default)."""
    writers = int(os.environ.get("MESSAGING_BATCH_WRITERS", "2"))
    alice, bob, carol = crew[0], crew[1], crew[2]
    a = connect(alice)
    locked = [a.group([bob.id], title=f"locked {n}")["id"] for n in range(writers)]
    free = a.group([bob.id], title="free")["id"]
    peers = [connect(alice) for _ in range(writers + 2)]
    rows = ", ".join(f"'{tid}'" for tid in locked)
    answers, stored_while_locked = send_behind_held_rows(
        api, alice, f"SELECT id FROM messaging.threads WHERE id IN ({rows}) ORDER BY id FOR UPDATE;\n",
        "e2e-frozen-writer",
        first=[(peers[n], {"threadId": tid, "body": f"locked {n}"}) for n, tid in enumerate(locked)],
        queued=[(peers[writers], {"threadId": locked[0], "body": "locked again"}),
                (peers[writers + 1], {"threadId": free, "body": "free"}),
                (connect(carol), {"threadId": locked[0], "body": "not a member"})],
        free=free)
    assert set(answers) == {f"locked {n}" for n in range(writers)} | {"locked again", "free", "not a member"}, answers
    ok(answers["free"], "a message to a thread no other session holds, batched with one to a held thread")
    assert stored_while_locked == ["free"], stored_while_locked
    for key in [f"locked {n}" for n in range(writers)] + ["locked again"]:
        err(answers[key], "unavailable", f"a message to a held thread ({key})")
    # Not told to retry a thread it is not in (until the fifty-second session it was).
    err(answers["not a member"], "forbidden", "a non-member's message to a held thread")

    # Once the holder is gone, the held threads take messages again.
    for tid in locked:
        assert ok(a.call("create_message", {"threadId": tid, "clientMessageId": cmid(), "body": "after"}),
                  "a message once the lock is released")["message"]["body"] == "after"


def test_a_message_held_by_a_frozen_writer_fails_only_the_replies_to_it(api, crew, connect):
    """A psql session holds messages locked (`FOR NO KEY UPDATE`), as a replica that froze inside
    a delete or a reaction of them would. Each batch writer first takes a reply to one of them; a
    reply to one again and a message to another thread queue behind them, and are written
    together in one batch. The other thread's message must be stored while the lock is held, and
    only the replies answered `unavailable`. Until the forty-sixth session a batch with a reply
    to a held message waited for it twice (2.5 s each) and then failed whole.

    Assumes one messaging replica with MESSAGING_BATCH_WRITERS writers (2 by default)."""
    writers = int(os.environ.get("MESSAGING_BATCH_WRITERS", "2"))
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    threads = [a.group([bob.id], title=f"replied to {n}")["id"] for n in range(writers)]
    targets = [a.send(tid, body=f"target {n}")["id"] for n, tid in enumerate(threads)]
    free = a.group([bob.id], title="free of replies")["id"]
    peers = [connect(alice) for _ in range(writers + 2)]
    rows = ", ".join(f"'{mid}'" for mid in targets)
    answers, stored_while_locked = send_behind_held_rows(
        api, alice, f"SELECT id FROM messaging.messages WHERE id IN ({rows}) ORDER BY id FOR NO KEY UPDATE;\n",
        "e2e-frozen-reaction",
        first=[(peers[n], {"threadId": tid, "body": f"reply {n}", "replyToId": targets[n]})
               for n, tid in enumerate(threads)],
        queued=[(peers[writers], {"threadId": threads[0], "body": "reply again", "replyToId": targets[0]}),
                (peers[writers + 1], {"threadId": free, "body": "free"})],
        free=free)
    assert set(answers) == {f"reply {n}" for n in range(writers)} | {"reply again", "free"}, answers
    ok(answers["free"], "a message batched with a reply to a held message")
    assert stored_while_locked == ["free"], stored_while_locked
    for key in [f"reply {n}" for n in range(writers)] + ["reply again"]:
        assert "replied to is held" in err(answers[key], "unavailable", f"a reply to a held message ({key})")

    # Once the holder is gone, the messages take replies again.
    for tid, target in zip(threads, targets):
        assert a.send(tid, body="after", replyToId=target)["replyToId"] == target


def test_events_of_commands_finished_during_a_graceful_stop_are_published_before_messaging_ends(crew, connect):
    """A `create_message` waits for its thread's lock when messaging is told to stop (SIGTERM);
    the lock goes a moment later, the command commits and is answered, and its event must leave
    the outbox before the process ends. Until the forty-fifth session the outbox relay stopped at
    the shutdown's start, and the event waited in the outbox until messaging started again.

    Stops and starts the messaging service."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    tid = a.group([bob.id], title="a stop")["id"]
    holder = hold_in_psql(f"e2e-stop-{uuid.uuid4().hex[:12]}",
                          f"SELECT id FROM messaging.threads WHERE id = '{tid}' FOR UPDATE;\n")
    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.append(a.sio.call(
        "create_message", {"threadId": tid, "clientMessageId": cmid(), "body": "sent as it stops"}, timeout=30)))
    stopping = threading.Thread(target=services, args=("stop", "messaging"))
    try:
        sender.start()
        # The command waits for the lock (asked of PostgreSQL: a fixed pause could end before
        # a slow machine had the command there, and the stop would find nothing under way).
        deadline = time.monotonic() + 20
        while psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND datname = current_database() AND query LIKE '%FROM threads%'") == "0" \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        stopping.start()
        time.sleep(1.0)  # messaging is stopping, the command still waits
    finally:
        release_psql(holder)
    sender.join(timeout=30)
    stopping.join(timeout=90)
    try:
        assert answers, "no answer to the command that was under way"
        ok(answers[0], "the command under way when messaging was told to stop")
        left = psql(f"SELECT count(*) FROM messaging.outbox WHERE body LIKE '%{tid}%'")
        assert left == "0", f"{left} event(s) of the command were left in the outbox when messaging ended"
    finally:
        services("start", "messaging")


def test_requests_of_unknown_types_are_counted_under_one_label():
    """A request type messaging does not serve is answered `unavailable` (during a rolling
    upgrade a newer caller's type reaches the older replicas, and a retry may reach a newer one;
    until the sixty-second session it was `invalid_argument`, which is not retried), and counted
    as `type="unknown"`: until the forty-fifth session each name a publisher sent became a
    metric series, and an entry of the metrics cache, for good."""
    admin = f"http://127.0.0.1:{os.environ.get('MESSAGING_ADMIN_PORT', '9102')}"
    before = scrape_metric(admin, "rpc_server_requests_total", type="unknown", outcome="unknown_type")
    names = [f"messaging.e2e_unknown_{uuid.uuid4().hex[:12]}.v1" for _ in range(3)]
    for name in names:
        answer = call_service("messaging", name, {}, waiting_ms=5000)
        assert answer is not None and answer["ok"] is False and answer["error"]["code"] == "unavailable", answer
    text = requests.get(f"{admin}/metrics", timeout=5).text
    assert not [name for name in names if name in text], "an unknown type became a metric label"
    # The reply goes out before the request is counted: the count may come a moment after it.
    deadline = time.monotonic() + 10
    while (after := scrape_metric(admin, "rpc_server_requests_total", type="unknown", outcome="unknown_type")) < before + 3:
        assert time.monotonic() < deadline, (before, after)
        time.sleep(0.1)
    time.sleep(0.5)
    after = scrape_metric(admin, "rpc_server_requests_total", type="unknown", outcome="unknown_type")
    assert after - before == 3, (before, after)


def test_a_command_that_comes_again_is_answered_as_the_first_time_and_not_run_again(api, crew, connect, tap):
    """A request that comes to messaging a second time (delivered again after its first
    delivery's replica or connection was lost before the ack, or published again after a lost
    confirm) carries the same envelope id. Run again, an edit undid a later edit (A, B, then A's
    copy: every client showed A), a removed reaction came back and a group was made twice; until
    the forty-fourth session that was so. Now the copy gets the first answer and changes nothing."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    thread = a.group([bob.id], title="copies")
    tid = thread["id"]
    mid = a.send(tid, "original")["id"]

    def command(type_: str, data: dict[str, Any], request_id: str) -> dict[str, Any]:
        answer = call_service("messaging", f"messaging.{type_}.v1", data, waiting_ms=5000, actor=alice.id,
                              request_id=request_id)
        assert answer is not None and answer.get("ok") is True, f"{type_}: {short(answer)}"
        return answer["data"]

    first_edit = str(uuid.uuid4())
    edited_a = command("update_message", {"messageId": mid, "body": "A"}, first_edit)["message"]
    command("update_message", {"messageId": mid, "body": "B"}, str(uuid.uuid4()))
    again = command("update_message", {"messageId": mid, "body": "A"}, first_edit)["message"]
    assert again == edited_a, "the copy's answer is not the first answer"
    assert messages_page(api, alice, tid)["items"][0]["body"] == "B", "the edit's copy undid the later edit"

    first_add = str(uuid.uuid4())
    command("add_reaction", {"messageId": mid, "emojiHex": "1f44d"}, first_add)
    command("remove_reaction", {"messageId": mid, "emojiHex": "1f44d"}, str(uuid.uuid4()))
    command("add_reaction", {"messageId": mid, "emojiHex": "1f44d"}, first_add)
    assert reactions_of(messages_page(api, alice, tid)["items"][0]) == {}, "the removed reaction came back"

    first_group = str(uuid.uuid4())
    made = command("create_conversation", {"type": "GROUP", "memberIds": [bob.id], "title": "once"}, first_group)
    made_again = command("create_conversation", {"type": "GROUP", "memberIds": [bob.id], "title": "once"}, first_group)
    assert made_again["thread"]["id"] == made["thread"]["id"], "the copy made a second group"

    # The events go out through the outbox relay after the commits: the first ones are waited
    # for, then a quiet moment for copies.
    tap.wait("MESSAGE_UPDATED", tid, count=2)
    tap.wait("REACTION_ADDED", tid)
    tap.wait("THREAD_CREATED", made["thread"]["id"])
    tap.pump(1.5)
    assert len(tap.matching("MESSAGE_UPDATED", tid)) == 2, "an edit's copy was announced"
    assert len(tap.matching("REACTION_ADDED", tid)) == 1, "a reaction's copy was announced"
    assert len(tap.matching("THREAD_CREATED", made["thread"]["id"])) == 1, "the group's copy was announced"


def test_an_edit_delete_reaction_or_seen_mark_is_never_dated_before_its_message(crew, connect, tap):
    """`createdAt` comes from the clock of the replica that wrote the message, `editedAt`,
    `deletedAt`, a reaction's `createdAt` and a seen mark's `at` from the database's. A replica
    whose clock ran ahead (here: a message dated a minute ahead) made edits dated before their
    message until the forty-fourth session, reactions and seen marks until the fifty-fourth."""
    alice, bob = crew[0], crew[1]
    a, b = connect(alice), connect(bob)
    tid = a.group([bob.id], title="clocks")["id"]
    edited_id, deleted_id = a.send(tid, "ahead")["id"], a.send(tid, "ahead too")["id"]
    psql(f"UPDATE messaging.messages SET created_at = created_at + interval '1 minute' "
         f"WHERE id IN ('{edited_id}', '{deleted_id}')")
    edited = a.ok("update_message", {"messageId": edited_id, "body": "edited"})["message"]
    assert edited["editedAt"] >= edited["createdAt"], edited
    b.ok("add_reaction", {"messageId": edited_id, "emojiHex": "1f44d"})
    assert psql(f"SELECT r.created_at >= m.created_at FROM messaging.reactions r JOIN messaging.messages m "
                f"ON m.id = r.message_id WHERE r.message_id = '{edited_id}'") == "t"
    b.ok("mark_seen", {"threadId": tid, "messageId": edited_id})
    seen = tap.wait("MESSAGE_SEEN", tid)[0].payload
    assert seen["at"] >= edited["createdAt"], (seen, edited)
    a.ok("delete_message", {"messageIds": [deleted_id]})
    assert psql(f"SELECT deleted_at >= created_at FROM messaging.messages WHERE id = '{deleted_id}'") == "t"


def test_a_group_too_close_to_its_deadline_is_unavailable_and_not_created(api, crew):
    """A group created after its caller was answered `unavailable` would be created again by the
    retry the contract allows. Right before its commit, `create_conversation` checks that its
    caller still waits half a second at least; a caller that waits 300 ms gets `unavailable` and
    no group. Until the forty-fourth session the group was created all the same."""
    alice, bob = crew[0], crew[1]
    title = f"late {secrets.token_hex(4)}"
    answer = call_service("messaging", "messaging.create_conversation.v1",
                          {"type": "GROUP", "memberIds": [bob.id], "title": title}, waiting_ms=300, actor=alice.id)
    assert answer is not None and answer.get("ok") is False, short(answer)
    assert answer["error"]["code"] == "unavailable", short(answer)
    assert psql(f"SELECT count(*) FROM messaging.threads WHERE title = '{title}'") == "0"


def test_an_edit_or_reaction_too_close_to_its_deadline_is_unavailable_and_changes_nothing(api, crew, connect):
    """As a group above: an edit, a reaction's add or its removal that committed after its
    caller was answered `unavailable` (a replica that froze before its commit, the request
    delivered again a minute later) undid what the user did after being told it failed, until
    the fiftieth session (a review)."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    tid = a.group([bob.id], title="late changes")["id"]
    mid = a.send(tid, "as sent")["id"]
    a.ok("add_reaction", {"messageId": mid, "emojiHex": "1f44d"})

    def late(type_: str, data: dict[str, Any]) -> None:
        answer = call_service("messaging", f"messaging.{type_}.v1", data, waiting_ms=300, actor=alice.id)
        assert answer is not None and answer.get("ok") is False, short(answer)
        assert answer["error"]["code"] == "unavailable", short(answer)

    late("update_message", {"messageId": mid, "body": "edited too late"})
    late("add_reaction", {"messageId": mid, "emojiHex": "2764"})
    late("remove_reaction", {"messageId": mid, "emojiHex": "1f44d"})
    message = messages_page(api, alice, tid)["items"][0]
    assert message["body"] == "as sent" and message.get("editedAt") is None, message
    assert reactions_of(message) == {"1f44d": [alice.id]}, message


def add_heavy_reactions(messages: list[dict[str, Any]]) -> None:
    """20 emoji of 1,000 users each on every message of `messages` (about 800 KB of ids)."""
    ids = ",".join(f"'{m['id']}'" for m in messages)
    psql(f"INSERT INTO messaging.reactions (message_id, user_id, emoji_hex, created_at) "
         f"SELECT m, gen_random_uuid(), to_hex(128512 + e), now() FROM unnest(ARRAY[{ids}]::uuid[]) AS m, "
         f"generate_series(0, 19) AS e, generate_series(1, 1000) AS u")


def test_a_page_of_threads_whose_last_messages_are_heavy_stops_at_about_a_megabyte(api, account, crew, connect):
    """As a page of messages (below): a page of threads whose last messages are heavy stops
    once it passes about a megabyte, and its cursor pages on to the rest."""
    owner = account()
    a = connect(owner)
    threads = [a.group([crew[1].id], title=f"heavy {i}")["id"] for i in range(3)]
    add_heavy_reactions([a.send(tid, "heavy last") for tid in threads])
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        resp = api.get("/api/threads", token=owner.access, params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, describe(resp)
        assert len(resp.content) < 1_500_000, f"a page of {len(resp.content)} bytes"
        page = resp.json()
        seen += [item["thread"]["id"] for item in page["items"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert seen == list(reversed(threads)), "paging lost or repeated a thread"


def test_a_page_with_messages_from_before_the_emoji_bound_is_measured_with_their_reactions(api, crew, connect):
    """A page is cut on each row's count of reactions before they are read, taking 20 emoji at
    most, as a message may have now; messages from before that bound may have many more. Here
    three such messages have 8,000 reactions over 4,000 emoji each: counted as about 320 KB
    each, all three would go in one page, 1.4 MB with their emoji. Measured again once their
    reactions are read, the page holds two, and pages on to the third."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    tid = a.group([bob.id], title="legacy emoji")["id"]
    legacy = [a.send(tid, f"legacy {i}") for i in range(3)]
    ids = ",".join(f"'{m['id']}'" for m in legacy)
    psql(f"INSERT INTO messaging.reactions (message_id, user_id, emoji_hex, created_at) "
         f"SELECT m, gen_random_uuid(), to_hex(65536 + e), now() FROM unnest(ARRAY[{ids}]::uuid[]) AS m, "
         f"generate_series(0, 3999) AS e, generate_series(1, 2) AS u")
    first = messages_page(api, alice, tid, limit=100)
    assert [m["id"] for m in first["items"]] == [m["id"] for m in reversed(legacy)][:2]
    assert first["nextCursor"]
    rest = messages_page(api, alice, tid, limit=100, before=first["nextCursor"])
    assert [m["id"] for m in rest["items"]] == [legacy[0]["id"]]


def test_a_page_of_heavy_messages_stops_at_about_a_megabyte_and_pages_on(api, crew, connect):
    """A message may carry 20 emoji each used by every member of a large group: about 200 KB of
    ids at 256 members. A page of 100 such messages was 20 MB for one GET until the forty-fourth
    session; a page now stops once its messages pass about a megabyte, and `nextCursor` pages on.
    Here each of three messages carries 20 emoji of 1,000 users each (about 800 KB of ids)."""
    alice, bob = crew[0], crew[1]
    a = connect(alice)
    tid = a.group([bob.id], title="heavy")["id"]
    light = a.send(tid, "light")
    heavy = [a.send(tid, f"heavy {i}") for i in range(3)]
    add_heavy_reactions(heavy)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        resp = get_messages(api, alice, tid, limit=100, **({"before": cursor} if cursor else {}))
        assert resp.status_code == 200, describe(resp)
        assert len(resp.content) < 1_500_000, f"a page of {len(resp.content)} bytes"
        page = resp.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert seen == [m["id"] for m in reversed(heavy)] + [light["id"]], "paging lost or repeated a message"
