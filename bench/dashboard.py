"""Benchmark: the dashboard and API under load, on a real Redis with 10,000 pending requests.

    python bench/dashboard.py [--pending 10000] [--rate 200]

The server runs in its own process (`approvals serve`); this process is the browsers and agents.
Prints queue page latency p50/p99, server-sent event delivery (request created -> event received)
p99, and HTTP decision -> waiting coroutine resumed p99 at `--rate` decisions per second.
Uses REDIS_URL, or starts a throwaway redis-server on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp

from approvals import ApprovalClient, Settings
from bench.waiters import with_redis
from tests.redis_server import free_port
from web.access.users import Role, UserStore

TARGETS = {"page_p99_ms": 50.0, "event_p99_ms": 50.0, "resume_p99_ms": 20.0}
PASSWORD = "bench password"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def start_server(url: str, prefix: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "REDIS_URL": url, "APPROVALS_PREFIX": prefix}
    server = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return server, base
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the server did not start")


async def login(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(f"{base}/login") as page:
        token = re.search(r'name="login_csrf" value="([^"]+)"', await page.text()).group(1)
    form = {"username": "bench", "password": PASSWORD, "login_csrf": token}
    async with session.post(f"{base}/login", data=form) as response:
        assert response.status == 200, response.status


async def fill(client: ApprovalClient, count: int) -> None:
    queues = ["email", "payments", "ops", "default"]
    for start in range(0, count, 500):
        await asyncio.gather(
            *(
                client.create("bench action", {"n": i, "note": "x" * 40}, queue=queues[i % 4], timeout=7200)
                for i in range(start, min(count, start + 500))
            )
        )


async def page_latency(session: aiohttp.ClientSession, base: str, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        path = "/queue" if i % 2 else f"/queue?page={1 + i % 40}&queue=ops"
        started = time.perf_counter()
        async with session.get(f"{base}{path}") as response:
            await response.read()
            assert response.status == 200
        latencies.append(time.perf_counter() - started)
    return latencies


async def event_latency(session: aiohttp.ClientSession, base: str, client: ApprovalClient, count: int) -> list[float]:
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    async with session.get(f"{base}/events") as stream:
        await stream.content.readline()  # ": connected"

        async def read() -> None:
            event = None
            async for raw in stream.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "created":
                    request_id = json.loads(line[6:])["id"]
                    received[request_id] = time.perf_counter()
                    if len(received) == count:
                        return

        reader = asyncio.create_task(read())
        for _ in range(count):
            started = time.perf_counter()
            request = await client.create("live event", {"t": started}, queue="email", timeout=7200)
            sent[request.id] = started
            await asyncio.sleep(0.02)  # 50 per second
        await asyncio.wait_for(reader, 30)
    return [received[i] - sent[i] for i in sent]


async def resume_latency(base: str, token: str, client: ApprovalClient, count: int, rate: float) -> list[float]:
    requests = [await client.create("decide me", {"n": n}, queue="payments", timeout=7200) for n in range(count)]
    decided_at: dict[str, float] = {}
    latencies: list[float] = []

    async def wait(request_id: str) -> None:
        await client.wait(request_id)
        latencies.append(time.perf_counter() - decided_at[request_id])

    waiters = [asyncio.create_task(wait(r.id)) for r in requests]
    await asyncio.sleep(0.5)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def decide(request_id: str) -> None:
            decided_at[request_id] = time.perf_counter()
            url = f"{base}/api/v1/approvals/{request_id}/decision"
            async with session.post(url, json={"outcome": "approve"}) as response:
                assert response.status == 200, await response.text()

        begun = time.perf_counter()
        posts = []
        for n, request in enumerate(requests):
            if (delay := begun + n / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            posts.append(asyncio.create_task(decide(request.id)))
        await asyncio.gather(*posts)
    await asyncio.wait_for(asyncio.gather(*waiters), 30)
    return latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="HTTP decisions per second")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()
    url, redis_process = with_redis(args.redis_url)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    settings = Settings(redis_url=url, prefix=prefix)
    server = None
    try:
        async with ApprovalClient(settings, requested_by="bench-agent", sweep_expired=False) as client:
            users = UserStore(client.store)
            await users.add("bench", PASSWORD, Role.ADMIN)
            token = await users.create_token("bench")
            print(f"filling {args.pending:,} pending requests ...", flush=True)
            await fill(client, args.pending)
            server, base = await start_server(url, prefix)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                await login(session, base)
                await page_latency(session, base, 20)  # warm up
                pages = await page_latency(session, base, 400)
                events = await event_latency(session, base, client, 300)
            resumes = await resume_latency(base, token, client, 2000, args.rate)
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait()

    print(f"\n{'measure':52} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    rows = [
        (f"queue page, {args.pending:,} pending (400 loads)", pages),
        ("event: request created -> browser got it (300)", events),
        (f"HTTP decision -> coroutine resumed, {args.rate:g}/s (2,000)", resumes),
    ]
    for name, values in rows:
        print(f"{name:52} {pct(values, 0.5):8.2f} {pct(values, 0.99):8.2f} {max(values) * 1000:8.2f}")
    for (name, values), (target_name, target) in zip(rows, TARGETS.items(), strict=True):
        ok = pct(values, 0.99) <= target
        print(f"  {'PASS' if ok else 'FAIL'}  {target_name.replace('_', ' ')} <= {target:g} ({name.split(',')[0]})")


if __name__ == "__main__":
    asyncio.run(main())
