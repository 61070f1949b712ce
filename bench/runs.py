"""Benchmark: agent runs as a service, across two worker processes on a real Redis.

    python bench/runs.py [--runs 5000] [--rate 250]

One server process (`approvals serve`) and two worker processes (`approvals worker`, the demo
profile: a CodeAgent with a scripted model that asks a person through `HumanApprovalTool`). This
process is the load: it submits every run through `POST /api/v1/runs`, waits until all of them wait
for their approval at once, then decides them through `POST /api/v1/approvals/{id}/decision`, paced at
`--rate` per second (0: as fast as 32 connections go).

Prints runs per second end to end (first submission to last run finished), the latency from a
decision being written to its run being finished (both timestamps as Redis holds them), and the
workers' resident memory per in-flight run. Targets: every run finishes; paced, decision-to-finish p99 <= 50 ms;
unpaced, more than 193 runs/s end to end (the figure before profiling).
Uses REDIS_URL, or starts a throwaway redis-server on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp

from approvals import ApprovalClient, ApprovalRequest, Settings
from bench.dashboard import pct
from bench.waiters import with_redis
from tests.redis_server import free_port
from web.access.users import Role, UserStore
from web.runs.store import Run, RunStatus, RunStore

J = TypeVar("J")
R = TypeVar("R")
BEFORE_RUNS_PER_S = 193  # unpaced, on 2 cores, before the worker was profiled
TARGET_P99_MS = 50.0
CONNECTIONS = 32


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def spawn(url: str, prefix: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REDIS_URL": url, "APPROVALS_PREFIX": prefix}
    return subprocess.Popen(
        [sys.executable, "-m", "web.cli", *args], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def until_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(f"{base}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the server did not start")


async def in_parallel(jobs: Sequence[J], work: Callable[[J], Awaitable[R]], limit: int = CONNECTIONS) -> list[R]:
    """`work` on every job, at most `limit` at once (the load script's connections)."""
    semaphore = asyncio.Semaphore(limit)

    async def one(job: J) -> R:
        async with semaphore:
            return await work(job)

    return await asyncio.gather(*(one(job) for job in jobs))


@dataclass
class Measured:
    started: float  # first submission
    submitted: float  # last submission answered
    all_waiting: float  # every run waits for its approval
    idle_rss: list[int]  # KB per worker before any run
    in_flight_rss: list[int]  # KB per worker with every run waiting
    runs: list[Run]
    decided: list[ApprovalRequest]


async def load(
    base: str, tokens: tuple[str, str], client: ApprovalClient, count: int, rate: float, workers: list[int]
) -> Measured:
    """Submit `count` runs, wait until all wait for a person, decide them all, wait until all finished.

    One user submits, another decides: a run's requests are its submitter's, who may not approve them.
    """
    idle_rss = [rss_kb(pid) for pid in workers]
    submitter, reviewer = ({"Authorization": f"Bearer {token}"} for token in tokens)
    async with aiohttp.ClientSession(base, connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as http:

        async def submit(n: int) -> str:
            async with http.post("/api/v1/runs", json={"task": f"bench task {n}"}, headers=submitter) as response:
                assert response.status == 202, await response.text()
                run_id: str = (await response.json())["id"]
                return run_id

        async def decide(request_id: str) -> None:
            path = f"/api/v1/approvals/{request_id}/decision"
            async with http.post(path, json={"outcome": "approve"}, headers=reviewer) as response:
                assert response.status == 200, await response.text()

        print(f"submitting {count:,} runs ...", flush=True)
        started = time.time()
        run_ids = await in_parallel(range(count), submit)
        submitted = time.time()
        pending = client.store.keys.pending()
        while await client.store.redis.zcard(pending) < count:
            await asyncio.sleep(0.05)
        all_waiting = time.time()
        in_flight_rss = [rss_kb(pid) for pid in workers]
        request_ids: list[str] = await client.store.redis.zrange(pending, 0, -1)
        print(f"{count:,} runs wait for approval; deciding at {rate:g}/s ...", flush=True)
        if rate:
            begun, posts = time.perf_counter(), []
            for n, request_id in enumerate(request_ids):
                if (delay := begun + n / rate - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
                posts.append(asyncio.create_task(decide(request_id)))
            await asyncio.gather(*posts)
        else:
            await in_parallel(request_ids, decide)
    runs = RunStore(client.store)
    while (await runs.counts())["finished"] < count:
        await asyncio.sleep(0.05)
    done, decided = await runs.get_many(run_ids), await client.store.get_many(request_ids)
    return Measured(started, submitted, all_waiting, idle_rss, in_flight_rss, done, decided)


def report(m: Measured, count: int, rate: float, slowest: int) -> None:
    decided_at = {r.run_id: r.decided_at or 0.0 for r in m.decided if r.run_id}
    latency = {run.id: (run.finished_at or 0.0) - decided_at[run.id] for run in m.runs if run.id in decided_at}
    values = list(latency.values())
    finished = sum(run.status is RunStatus.FINISHED for run in m.runs)
    last = max(run.finished_at or 0.0 for run in m.runs)
    for run_id in sorted(latency, key=latency.__getitem__, reverse=True)[:slowest]:
        run = next(r for r in m.runs if r.id == run_id)
        at = decided_at[run_id] - m.started
        print(f"  slow: {latency[run_id] * 1000:7.1f} ms, decided at +{at:6.2f} s, {run.worker}")
    print(f"\nruns finished: {finished:,} of {count:,}, each after one approval decided over HTTP")
    print(f"submitted in {m.submitted - m.started:.2f} s ({count / (m.submitted - m.started):,.0f}/s through the API); "
          f"all waiting for a person after {m.all_waiting - m.started:.2f} s")  # fmt: skip
    print(f"end to end: {count / (last - m.started):,.0f} runs/s (first submission to last run finished in "
          f"{last - m.started:.2f} s; decisions {f'paced at {rate:g}/s' if rate else 'unpaced'})")  # fmt: skip
    print(f"decision -> run finished: p50 {pct(values, 0.5):.2f} ms, p99 {pct(values, 0.99):.2f} ms, "
          f"max {max(values) * 1000:.2f} ms")  # fmt: skip
    per_run = (sum(m.in_flight_rss) - sum(m.idle_rss)) / count
    print(f"worker RSS: idle {sum(m.idle_rss) / 1024:.1f} MiB, every run in flight {sum(m.in_flight_rss) / 1024:.1f} "
          f"MiB: {per_run:.1f} KB per in-flight run")  # fmt: skip
    print(f"  {'PASS' if finished == count else 'FAIL'}  every run finished")
    if rate:  # the latency target holds under a steady rate; unpaced, decisions queue behind each other
        ok = pct(values, 0.99) <= TARGET_P99_MS
        print(f"  {'PASS' if ok else 'FAIL'}  decision -> finished p99 <= {TARGET_P99_MS:g} ms at {rate:g} decisions/s")
    else:
        ok = count / (last - m.started) > BEFORE_RUNS_PER_S
        print(f"  {'PASS' if ok else 'FAIL'}  unpaced end to end above {BEFORE_RUNS_PER_S} runs/s (the figure before "
              "hiredis; machines drift, so compare against the previous commit side by side too)")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=250.0, help="decisions per second (0: unpaced)")
    parser.add_argument("--slowest", type=int, default=0, help="also list the N slowest decision -> finish")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args()
    url, redis_process = with_redis(args.redis_url)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    port = free_port()
    # Each worker may hold every run: all of them wait for a person at once.
    processes = [spawn(url, prefix, "serve", "--port", str(port), "--agent", "demo")]
    processes += [spawn(url, prefix, "worker", "--concurrency", str(args.runs), "--agent", "demo") for _ in range(2)]
    try:
        async with ApprovalClient(
            Settings(redis_url=url, prefix=prefix), heartbeat=None, sweep_expired=False
        ) as client:
            users = UserStore(client.store)
            await users.add("bench", "bench password", Role.ADMIN)
            await users.add("bench-reviewer", "bench password", Role.REVIEWER)
            tokens = (await users.create_token("bench"), await users.create_token("bench-reviewer"))
            base = f"http://127.0.0.1:{port}"
            await until_ready(base)
            await asyncio.sleep(1.0)  # the workers connect
            measured = await load(base, tokens, client, args.runs, args.rate, [p.pid for p in processes[1:]])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait()
    report(measured, args.runs, args.rate, args.slowest)


if __name__ == "__main__":
    asyncio.run(main())
