"""The messaging service's transactional outbox under a crash: the service is killed (SIGKILL,
through its `FAULT_POINTS=after_commit` crash point) right after a command's transaction
commits and before the outbox relay publishes; once it is started again, the domain event is
published, exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pika
import socketio

from e2e_support import BIN_DIR, GATEWAY_URL, RABBITMQ_URI, ROOT, SERVICES, wait_until_ready

ADMIN_PORT = os.environ.get("MESSAGING_ADMIN_PORT", "9102")


def wait_ready(timeout: float = 60) -> None:
    wait_until_ready(f"http://127.0.0.1:{ADMIN_PORT}/readyz", "messaging", timeout)


def drain(channel, queue_name: str, seconds: float) -> list[dict]:
    """Every event that reaches the queue within `seconds`."""
    events = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        method, properties, body = channel.basic_get(queue_name, auto_ack=True)
        if method is None:
            time.sleep(0.05)
            continue
        event = json.loads(body)
        assert properties.message_id == event["id"]
        events.append(event)
    return events


def test_an_event_committed_before_a_crash_is_published_once_after_restart(account):
    alice, bob = account(), account()
    sio = socketio.Client(reconnection=False)
    sio.connect(GATEWAY_URL, auth={"token": alice.access}, transports=["websocket"], wait_timeout=10)
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URI))
    channel = connection.channel()
    observed = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    channel.queue_bind(observed, "messenger.events", "messaging.message_created.v1")
    crashing = None
    try:
        ack = sio.call("create_conversation", {"type": "DM", "memberIds": [bob.id]}, timeout=10)
        assert ack["ok"], ack
        thread = ack["data"]["thread"]["id"]

        subprocess.run(["bash", str(SERVICES), "stop", "messaging"], check=True, capture_output=True, timeout=60)
        env = dict(os.environ, FAULT_POINTS="after_commit", ENV_FILE="/dev/null")
        log = open(ROOT / ".run" / "logs" / "messaging-fault.log", "w")
        crashing = subprocess.Popen([str(BIN_DIR / "messaging")], env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_ready()

        client_id = f"crash-{uuid.uuid4().hex[:8]}"
        answered = []
        sio.emit("create_message", {"threadId": thread, "clientMessageId": client_id, "body": "survives"},
                 callback=lambda *args: answered.append(args))
        assert crashing.wait(timeout=20) == -9, "the crash point did not fire"
        before = [e for e in drain(channel, observed, 1.0) if e["data"]["threadId"] == thread]
        assert before == [], f"published before the restart: {before}"

        subprocess.run(["bash", str(SERVICES), "start", BIN_DIR.name, "messaging"], check=True, capture_output=True,
                       timeout=120)
        # Up to 30 s for the first (a slow start), then 1.5 s more for a second copy.
        events = []
        deadline = time.time() + 30
        while not events and time.time() < deadline:
            events = [e for e in drain(channel, observed, 0.5) if e["data"]["threadId"] == thread]
        events += [e for e in drain(channel, observed, 1.5) if e["data"]["threadId"] == thread]
        assert len(events) == 1, f"expected exactly one MESSAGE_CREATED, got {events}"
        message = events[0]["data"]["data"]["message"]
        assert message["clientMessageId"] == client_id and message["body"] == "survives" and message["seq"] == 1
        assert sorted(events[0]["data"]["recipients"]) == sorted([alice.id, bob.id])

        # The retried emit finds the committed message: same id, no second event.
        retry = sio.call("create_message", {"threadId": thread, "clientMessageId": client_id, "body": "again"},
                         timeout=10)
        assert retry["ok"] and retry["data"]["message"]["id"] == message["id"], retry
        assert [e for e in drain(channel, observed, 1.5) if e["data"]["threadId"] == thread] == []
    finally:
        if crashing is not None and crashing.poll() is None:
            crashing.kill()
            crashing.wait(timeout=10)
        subprocess.run(["bash", str(SERVICES), "start", BIN_DIR.name, "messaging"], capture_output=True, timeout=120)
        sio.disconnect()
        connection.close()
