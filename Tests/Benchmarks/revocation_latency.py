"""How long a logout takes to reach the sockets of its session (docs/auth.md, "Revoked sessions").

Each trial logs in (a new session), connects a python-socketio client with that access token,
logs out, and times the server-side DISCONNECT from the moment the logout was sent and from its
204. For scale, the same run times the socket's `ping` command and `GET /api/users/me`.

    .run/venv/bin/python Tests/Benchmarks/revocation_latency.py [trials]

Needs `make up` (the gateway at GATEWAY_URL, default http://127.0.0.1:5000).
"""

from __future__ import annotations

import os
import queue
import statistics
import sys
import time
import uuid

import requests
import socketio

BASE = os.environ.get("GATEWAY_URL", "http://127.0.0.1:5000").rstrip("/")


def post(path: str, body: dict, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(BASE + path, json=body, headers=headers, timeout=10)


def summary(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"| {name} | {len(values)} | {statistics.median(ordered):.1f} | {p90:.1f} | {ordered[-1]:.1f} |"
    )


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    name = f"revbench_{uuid.uuid4().hex[:10]}"
    password = "revocation bench 1"
    created = post("/api/users", {"username": name, "email": f"{name}@bench.example", "password": password})
    assert created.status_code == 201, created.text

    from_send, from_reply, ping, me = [], [], [], []
    for _ in range(trials):
        pair = post("/api/login", {"login": name, "password": password}).json()
        reasons: queue.Queue = queue.Queue()
        sio = socketio.Client(reconnection=False)
        sio.on("disconnect", lambda reason=None: reasons.put((time.perf_counter(), reason)))
        sio.connect(BASE, auth={"token": pair["accessToken"]}, transports=["websocket"], wait_timeout=10)

        started = time.perf_counter()
        sio.call("ping", 1, timeout=5)
        ping.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        requests.get(BASE + "/api/users/me", headers={"Authorization": f"Bearer {pair['accessToken']}"}, timeout=5)
        me.append((time.perf_counter() - started) * 1000)

        sent = time.perf_counter()
        reply = post("/api/logout", {"refreshToken": pair["refreshToken"]})
        replied = time.perf_counter()
        assert reply.status_code == 204, reply.text
        disconnected, reason = reasons.get(timeout=10)
        assert reason == socketio.Client.reason.SERVER_DISCONNECT, reason
        from_send.append((disconnected - sent) * 1000)
        from_reply.append((disconnected - replied) * 1000)
        time.sleep(0.05)

    print(f"revocation latency against {BASE}, {trials} trials (ms)\n")
    print("| measure | n | p50 | p90 | max |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(summary("logout sent -> DISCONNECT", from_send))
    print(summary("logout's 204 -> DISCONNECT", from_reply))
    print(summary("socket `ping` round trip (same run)", ping))
    print(summary("`GET /api/users/me` (same run)", me))


if __name__ == "__main__":
    main()
