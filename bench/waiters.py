"""Benchmark: N coroutines waiting for approval in one process, decided from a second process.

    python bench/waiters.py                    # 10,000 waiting coroutines (async mode)
    python bench/waiters.py --mode threads     # 1,000 waiters, thread per waiter vs coroutines

Prints wake latency (decision written -> waiter resumed) p50/p99/max, the waiting process's Redis
connections, RSS per waiter over baseline, and wall time. `--mode threads` measures the pattern the
smolagents docs call Approach 2 (a sync tool blocking in `anyio.to_thread.run_sync` on a sync Redis
BLPOP) next to the async waiter at the same N, and prints the ratios.
Uses REDIS_URL, or --redis-url, or else starts a throwaway redis-server on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio.to_thread
import redis
from redis.asyncio import Redis

from approvals import ApprovalClient, ApprovalStore, Settings
from approvals.connections import command_client

TARGETS = {"p99_ms": 10.0, "connections": 32, "kb_per_waiter": 10.0, "speedup": 15.0}


@dataclass
class Result:
    mode: str
    waiters: int
    latencies: list[float]  # seconds
    connections: int
    bytes_per_waiter: float
    decide_seconds: float  # first decision written -> last waiter resumed
    total_seconds: float

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self) -> str:
        return (
            f"{self.mode:8} {self.waiters:>7,} {self.percentile(0.5):>8.2f} {self.percentile(0.99):>8.2f} "
            f"{max(self.latencies) * 1000:>9.2f} {self.connections:>6} {self.bytes_per_waiter / 1024:>9.2f} "
            f"{self.decide_seconds:>9.2f} {self.total_seconds:>8.2f}"
        )


HEADER = (
    f"{'mode':8} {'waiters':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>9} {'conns':>6} {'KB/waiter':>9} "
    f"{'decide s':>9} {'total s':>8}"
)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def connections_of_this_process(url: str) -> int:
    async with Redis.from_url(url, decode_responses=True) as admin:
        return sum(1 for c in await admin.client_list() if c["name"].endswith(f":{os.getpid()}"))


def start_decider(url: str, prefix: str, rate: float, wake_lists: bool) -> subprocess.Popen[str]:
    command = [sys.executable, __file__, "--role", "decider", "--redis-url", url, "--prefix", prefix]
    command += ["--rate", str(rate)] + (["--wake-lists"] if wake_lists else [])
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


async def settle(client: ApprovalClient, waiters: int) -> None:
    """Until every waiter is registered and the initial reads are done (the pool is idle)."""
    while client.waiting < waiters:
        await asyncio.sleep(0.01)
    pool = client.store.redis.connection_pool
    while pool._in_use_connections:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)


async def run_async(url: str, waiters: int, rate: float) -> Result:
    started = time.perf_counter()
    settings = Settings(redis_url=url, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    async with ApprovalClient(settings, requested_by="bench", sweep_expired=False) as client:
        ids = await create_requests(client, waiters)
        latencies: list[float] = []

        async def wait(request_id: str) -> None:
            decision = await client.wait(request_id)
            latencies.append(time.time() - decision.decided_at)

        gc.collect()
        baseline = rss_bytes()
        tasks = [asyncio.create_task(wait(i)) for i in ids]
        await settle(client, waiters)
        gc.collect()
        per_waiter = (rss_bytes() - baseline) / waiters
        connections = await connections_of_this_process(url)
        decider = start_decider(url, settings.prefix, rate, wake_lists=False)
        await asyncio.gather(*tasks)
        finished = time.time()
        first_decision = float(await asyncio.to_thread(decider_first_decision, decider))
    return Result(
        "async", waiters, latencies, connections, per_waiter, finished - first_decision, time.perf_counter() - started
    )


async def run_threads(url: str, waiters: int, rate: float) -> Result:
    """Approach 2: each waiter is a sync function blocking on BLPOP in anyio's worker threads."""
    started = time.perf_counter()
    settings = Settings(redis_url=url, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    sync_redis = redis.Redis.from_url(url, decode_responses=True, client_name=f"approvals:threads:{os.getpid()}")
    async with ApprovalClient(settings, requested_by="bench", sweep_expired=False) as client:
        ids = await create_requests(client, waiters)
        latencies: list[float] = []
        keys = client.store.keys

        def blocking_wait(request_id: str) -> None:
            sync_redis.blpop([f"{settings.prefix}wake:{request_id}"], timeout=0)
            decided_at = sync_redis.hget(keys.request(request_id), "decided_at")
            latencies.append(time.time() - float(decided_at or 0))

        gc.collect()
        baseline = rss_bytes()
        tasks = [asyncio.create_task(anyio.to_thread.run_sync(blocking_wait, i)) for i in ids]
        await asyncio.sleep(1.0)  # let the thread pool fill up
        gc.collect()
        per_waiter = (rss_bytes() - baseline) / waiters
        connections = await connections_of_this_process(url)
        decider = start_decider(url, settings.prefix, rate, wake_lists=True)
        await asyncio.gather(*tasks)
        finished = time.time()
        first_decision = float(await asyncio.to_thread(decider_first_decision, decider))
    sync_redis.close()
    return Result(
        "threads", waiters, latencies, connections, per_waiter, finished - first_decision, time.perf_counter() - started
    )


def decider_first_decision(decider: subprocess.Popen[str]) -> str:
    out, _ = decider.communicate(timeout=600)
    return json.loads(out.strip().splitlines()[-1])["first_decision"]


async def create_requests(client: ApprovalClient, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 500):
        batch = range(start, min(count, start + 500))
        requests = await asyncio.gather(*(client.create("bench", {"i": i}, timeout=3600) for i in batch))
        ids += [r.id for r in requests]
    return ids


async def decide(url: str, prefix: str, rate: float, wake_lists: bool) -> None:
    """The second process: approve every pending request in random order, paced at `rate` per second."""
    settings = Settings(redis_url=url, prefix=prefix)
    redis_client = command_client(settings)
    store = ApprovalStore(redis_client, settings)
    ids = await redis_client.zrange(store.keys.pending(), 0, -1)
    random.shuffle(ids)

    async def approve(request_id: str) -> None:
        await store.approve(request_id, by="bench-reviewer")
        if wake_lists:
            await redis_client.lpush(f"{prefix}wake:{request_id}", "1")

    begun = time.time()
    tasks = []
    for n, request_id in enumerate(ids):
        if rate > 0 and (delay := begun + n / rate - time.time()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(approve(request_id)))
    await asyncio.gather(*tasks)
    await redis_client.aclose()
    print(json.dumps({"first_decision": begun, "decided": len(ids), "seconds": time.time() - begun}))


def with_redis(url: str | None) -> tuple[str, subprocess.Popen[bytes] | None]:
    if url:
        return url, None
    from tests.redis_server import free_port

    port = free_port()
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory, "--maxclients", "20000"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    client.close()
    return f"redis://127.0.0.1:{port}/0", server


def report(results: list[Result], rate: float) -> None:
    print(f"decisions paced at {rate:g}/s from a second process" if rate else "decisions unpaced")
    print(HEADER)
    for result in results:
        print(result.row())
    async_result = next(r for r in results if r.mode == "async")
    checks = []
    if async_result.waiters >= 10_000:
        checks += [
            ("p99 wake latency <= 10 ms", async_result.percentile(0.99) <= TARGETS["p99_ms"]),
            ("<= 32 Redis connections", async_result.connections <= TARGETS["connections"]),
            ("<= 10 KB per waiter", async_result.bytes_per_waiter <= TARGETS["kb_per_waiter"] * 1024),
        ]
    threads = next((r for r in results if r.mode == "threads"), None)
    if threads is not None:
        wall = threads.decide_seconds / async_result.decide_seconds
        p99 = threads.percentile(0.99) / async_result.percentile(0.99)
        print(f"threads / async at {threads.waiters:,}: decide wall time x{wall:.1f}, p99 wake latency x{p99:.0f}")
        checks.append(("async >= 15x faster than threads (p99 wake latency)", p99 >= TARGETS["speedup"]))
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["async", "threads"], default="async")
    parser.add_argument("-n", "--waiters", type=int, help="default 10,000 (async) or 1,000 (threads)")
    parser.add_argument("--rate", type=float, default=2000.0, help="decisions per second; 0 = unpaced")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--role", choices=["waiter", "decider"], default="waiter", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--wake-lists", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "decider":
        await decide(args.redis_url, args.prefix, args.rate, args.wake_lists)
        return
    url, server = with_redis(args.redis_url)
    try:
        if args.mode == "async":
            results = [await run_async(url, args.waiters or 10_000, args.rate)]
        else:
            n = args.waiters or 1_000
            results = [await run_threads(url, n, args.rate), await run_async(url, n, args.rate)]
        report(results, args.rate)
    finally:
        if server is not None:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    asyncio.run(main())
