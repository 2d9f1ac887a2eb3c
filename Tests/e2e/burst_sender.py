"""Sends a burst of `create_message` commands over one raw Socket.IO WebSocket, without waiting
for each ack, and prints what came back as one JSON line: `{"acks": {id: ack}, "ended": str?}`.

It runs as a process of its own (`python burst_sender.py`, the access token in `ACCESS_TOKEN`), so
that reading its own events, megabytes of them, does not take the interpreter lock from a test
that measures another socket's reading speed: in one process, a thread that always has a frame
to parse let the other read only a frame or so per switch interval (5 ms), about 100 KB/s.
Commands are sent on a thread of their own, and pongs by it while it sends; events are read and
dropped.

Usage: burst_sender.py GATEWAY_URL THREAD_ID COUNT BODY_CHARACTERS TAG
"""

from __future__ import annotations

import json
import os
import sys
import threading

import websocket


def send(ws: websocket.WebSocket, thread_id: str, count: int, body: str, tag: str, pong_due: threading.Event) -> None:
    """Sends the commands on a thread of their own: the gateway stops reading a socket whose
    commands wait, and this process must go on reading its events meanwhile. It also sends the
    pongs while it runs: a pong from the reading thread waited for websocket-client's send lock,
    which this thread held while the gateway did not read, and took again at once each time (a
    lock is not fair), so the reading stopped, and the gateway closed the socket for not reading
    for 10 s (a CI run)."""
    for n in range(count):
        if pong_due.is_set():
            pong_due.clear()
            ws.send("3")
        ws.send(f"42{n}" + json.dumps(["create_message", {"threadId": thread_id, "clientMessageId": f"{tag}-{n}",
                                                          "body": body}]))


def main() -> None:
    gateway_url, thread_id, count, characters, tag = sys.argv[1:6]
    token = os.environ["ACCESS_TOKEN"]
    body = "\U0001f600" * int(characters)
    ws = websocket.create_connection(gateway_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=120)
    acks: dict[int, object] = {}
    ended = None
    try:
        assert ws.recv().startswith("0")
        ws.send("40" + json.dumps({"token": token}))
        assert ws.recv().startswith("40")
        pong_due = threading.Event()
        sending = threading.Thread(target=send, args=(ws, thread_id, int(count), body, tag, pong_due), daemon=True)
        sending.start()
        while len(acks) < int(count):
            frame = ws.recv()
            if not frame:
                ended = "closed by the server"
                break
            if frame == "2":
                pong_due.set()
            if pong_due.is_set() and not sending.is_alive():
                pong_due.clear()
                ws.send("3")
            if frame.startswith("43"):
                bracket = frame.index("[")
                acks[int(frame[2:bracket])] = json.loads(frame[bracket:])[0]
    except Exception as exc:  # noqa: BLE001 - reported to the test, whatever it is
        ended = f"{type(exc).__name__}: {exc}"
    finally:
        ws.close()
    print(json.dumps({"acks": acks, "ended": ended}), flush=True)


if __name__ == "__main__":
    main()
