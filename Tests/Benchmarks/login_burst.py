"""A burst of logins, as after an outage or a release: more at once than auth's bcrypt threads can
check within the gateway's RPC timeout (docs/auth.md, "Login bursts").

Registers USERS accounts, then every user logs in at the same moment, each from its own loopback
address (127.0.2.x, so that the per-address login throttle sees distinct clients), and retries an
`unavailable` (503) answer for at most LIMIT seconds, as a client should: after the answer's
`Retry-After` plus up to half a second (mode `retry-after`, the default), or after 0.5 to 1 s
whatever the answer says (mode `fixed`). Prints how long the burst took to log everyone in, how
many 503s the clients saw, how many bcrypt checks auth skipped because their caller had stopped
waiting, and auth's CPU time.

    .run/venv/bin/python Tests/Benchmarks/login_burst.py [users] [limit seconds] [retry-after|fixed]

Needs `make up` (the gateway at GATEWAY_URL, default http://127.0.0.1:5000; auth's admin port at
AUTH_ADMIN_PORT, default 9101; auth's pid in .run/pids/svc-auth.pid).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

import aiohttp

BASE = os.environ.get("GATEWAY_URL", "http://127.0.0.1:5000").rstrip("/")
ADMIN = f"http://127.0.0.1:{os.environ.get('AUTH_ADMIN_PORT', '9101')}"
PID_FILE = Path(__file__).resolve().parents[2] / ".run" / "pids" / "svc-auth.pid"
PASSWORD = "burst password 1"


def address(index: int) -> str:
    return f"127.0.2.{1 + index % 250}" if index < 250 else f"127.0.3.{1 + index % 250}"


async def skipped_checks(session: aiohttp.ClientSession) -> int:
    async with session.get(ADMIN + "/metrics") as reply:
        for line in (await reply.text()).splitlines():
            if line.startswith("password_checks_skipped_total"):
                return int(float(line.split()[-1]))
    return 0


def auth_cpu_seconds() -> float:
    pid = PID_FILE.read_text().strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def register(names: list[str]) -> None:
    gate = asyncio.Semaphore(8)

    async def one(index: int, name: str) -> None:
        connector = aiohttp.TCPConnector(local_addr=(address(index), 0))
        async with gate, aiohttp.ClientSession(connector=connector) as session:
            for _ in range(10):
                body = {"username": name, "email": f"{name}@burst.example", "password": PASSWORD}
                async with session.post(BASE + "/api/users", json=body) as reply:
                    if reply.status == 201:
                        return
                    if reply.status != 503:
                        raise RuntimeError(f"register {name}: {reply.status} {await reply.text()}")
                await asyncio.sleep(1)
            raise RuntimeError(f"register {name}: still unavailable")

    await asyncio.gather(*(one(index, name) for index, name in enumerate(names)))


def pause(reply: aiohttp.ClientResponse, honor_retry_after: bool) -> float:
    """Seconds before the next attempt after a 503."""
    retry_after = reply.headers.get("Retry-After", "")
    if honor_retry_after and retry_after.isdigit():
        return int(retry_after) + random.uniform(0, 0.5)
    return random.uniform(0.5, 1.0)


async def log_in(
    index: int, name: str, start: asyncio.Event, limit: float, honor_retry_after: bool
) -> tuple[float | None, int, int, int]:
    """Seconds from the burst's start to this user's 200 (None if never), 503s, 503s with a
    Retry-After, other answers."""
    connector = aiohttp.TCPConnector(local_addr=(address(index), 0))
    timeout = aiohttp.ClientTimeout(total=limit)
    unavailable = told_when = other = 0
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await start.wait()
        began = time.monotonic()
        while time.monotonic() - began < limit:
            async with session.post(BASE + "/api/login", json={"login": name, "password": PASSWORD}) as reply:
                await reply.read()
                if reply.status == 200:
                    return time.monotonic() - began, unavailable, told_when, other
                if reply.status == 503:
                    unavailable += 1
                    told_when += "Retry-After" in reply.headers
                else:
                    other += 1
                    return None, unavailable, told_when, other
            await asyncio.sleep(pause(reply, honor_retry_after))
    return None, unavailable, told_when, other


async def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    limit = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    mode = sys.argv[3] if len(sys.argv) > 3 else "retry-after"
    if mode not in ("retry-after", "fixed"):
        sys.exit(f"mode {mode!r}: retry-after or fixed")
    honor_retry_after = mode == "retry-after"
    prefix = "burst_" + uuid.uuid4().hex[:8]
    names = [f"{prefix}_{index}" for index in range(users)]
    print(f"login burst against {BASE}: registering {users} users")
    await register(names)
    async with aiohttp.ClientSession() as admin:
        skipped_before = await skipped_checks(admin)
        cpu_before = auth_cpu_seconds()
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(log_in(index, name, start, limit, honor_retry_after))
            for index, name in enumerate(names)
        ]
        await asyncio.sleep(0.5)  # every client's session is ready
        after = "Retry-After plus up to 0.5 s" if honor_retry_after else "0.5 to 1 s"
        print(f"{users} logins at once, each retrying 503 after {after}, for at most {limit:.0f} s")
        start.set()
        results = await asyncio.gather(*tasks)
        skipped = await skipped_checks(admin) - skipped_before
        cpu = auth_cpu_seconds() - cpu_before
    times = sorted(result[0] for result in results if result[0] is not None)
    unavailable = sum(result[1] for result in results)
    told_when = sum(result[2] for result in results)
    other = sum(result[3] for result in results)
    print("| logged in | last in (s) | p50 (s) | 503 answers | with Retry-After | other answers | checks skipped | auth CPU (s) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    last = f"{times[-1]:.1f}" if times else "-"
    median = f"{statistics.median(times):.1f}" if times else "-"
    print(f"| {len(times)} of {users} | {last} | {median} | {unavailable} | {told_when} | {other} | {skipped} | {cpu:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
