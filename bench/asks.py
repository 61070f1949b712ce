"""Benchmark: a burst of asks. N coroutines call `request_approval` at once on one ApprovalClient, all
wait, and a second process decides them, paced.

    python bench/asks.py                 # 100,000 agents asking at once; decisions at 2,000/s
    python bench/asks.py -n 20000 --rate 0

Prints how many asks failed, how long until every request existed, the longest gap between the
asking process's heartbeats during the burst, its Redis connections, its RSS per waiting agent
(asking coroutine included), and wake latency (decision written -> agent resumed) p50/p99/max.
Targets: 0 failed, all created <= 20 s, wake p99 <= 10 ms, <= 32 connections, <= 5 KB per agent,
heartbeats never more than 2 intervals apart.
Uses REDIS_URL, or --redis-url, or else starts a throwaway redis-server on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from approvals import ApprovalClient, Settings
from approvals.heartbeat import INTERVAL as HEARTBEAT_INTERVAL
from bench.waiters import connections_of_this_process, decider_first_decision, rss_bytes, start_decider, with_redis

TARGETS = {"create_s": 20.0, "p99_ms": 10.0, "connections": 32, "kb_per_agent": 5.0}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def heartbeats(client: ApprovalClient, gaps: list[float], stop: asyncio.Event) -> None:
    """Watch this process's heartbeat from a connection of its own: the longest gap between beats."""
    from approvals.connections import command_client

    watcher = command_client(client.settings)
    await watcher.ping()  # connected before the burst: a connect during it would wait on the busy loop too
    last_seen = time.time()
    try:
        while not stop.is_set():
            raw = await watcher.hget(client.store.keys.processes, client._heartbeat.process_id)  # type: ignore[union-attr]
            if raw:
                seen = json.loads(raw)["seen_at"]
                if seen > last_seen:
                    gaps.append(seen - last_seen)
                    last_seen = seen
            gaps.append(time.time() - last_seen)
            await asyncio.sleep(0.25)
    finally:
        await watcher.aclose()


async def run(url: str, agents: int, rate: float) -> int:
    settings = Settings(redis_url=url, prefix=f"bench:{uuid.uuid4().hex[:8]}:")
    async with ApprovalClient(settings, requested_by="bench", sweep_expired=False) as client:
        latencies: list[float] = []
        failures: list[BaseException] = []

        async def agent(n: int) -> None:
            try:
                decision = await client.request_approval("bench", {"i": n}, timeout=3600)
            except Exception as error:
                failures.append(error)
                return
            latencies.append(time.time() - decision.decided_at)

        gaps: list[float] = []
        stop = asyncio.Event()
        watching = asyncio.create_task(heartbeats(client, gaps, stop))
        await asyncio.sleep(0.3)
        gc.collect()
        baseline = rss_bytes()
        started = time.perf_counter()
        tasks = [asyncio.create_task(agent(n)) for n in range(agents)]
        pending = client.store.keys.pending()
        while await client.store.redis.zcard(pending) + len(failures) < agents:
            await asyncio.sleep(0.05)
        created = time.perf_counter() - started
        while client.waiting + len(failures) < agents:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        gc.collect()
        per_agent = (rss_bytes() - baseline) / agents
        connections = await connections_of_this_process(url)
        stop.set()
        await watching
        print(f"{agents:,} agents asked at once: {len(failures):,} failed; every request created after {created:.2f} s")
        decider = start_decider(url, settings.prefix, rate, wake_lists=False)
        await asyncio.gather(*tasks)
        await asyncio.to_thread(decider_first_decision, decider)
    for error in failures[:3]:
        print(f"  failed: {type(error).__name__}: {error}")
    worst_gap = max(gaps, default=0.0)
    print(f"heartbeats during the burst: longest gap {worst_gap:.2f} s (every {HEARTBEAT_INTERVAL:g} s)")
    print(f"Redis connections of the asking process: {connections}; RSS per waiting agent {per_agent / 1024:.2f} KB")
    print(f"wake (decision written -> agent resumed), decisions at {rate:g}/s: p50 {pct(latencies, 0.5):.2f} ms, "
          f"p99 {pct(latencies, 0.99):.2f} ms, max {pct(latencies, 1.0):.2f} ms")  # fmt: skip
    checks = [
        ("0 failed asks", not failures),
        (f"every request created <= {TARGETS['create_s']:g} s", created <= TARGETS["create_s"]),
        (f"wake p99 <= {TARGETS['p99_ms']:g} ms", pct(latencies, 0.99) <= TARGETS["p99_ms"]),
        (f"<= {TARGETS['connections']} Redis connections", connections <= TARGETS["connections"]),
        (f"<= {TARGETS['kb_per_agent']:g} KB RSS per waiting agent", per_agent <= TARGETS["kb_per_agent"] * 1024),
        ("heartbeats kept beating (no gap over 2 intervals)", worst_gap <= 2 * HEARTBEAT_INTERVAL),
    ]
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--agents", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="decisions per second; 0 = unpaced")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()
    url, server = with_redis(args.redis_url)
    try:
        return await run(url, args.agents, args.rate)
    finally:
        if server is not None:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
