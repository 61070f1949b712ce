"""The platform as deployed: one server process and two worker processes sharing a real Redis.

One worker is killed (SIGKILL: no goodbye) while its runs wait for approvals. After the approvals
are given through the HTTP API, every run finishes exactly once (its action, which appends to a
ledger in Redis, happened once) and no approval was asked twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from approvals import ApprovalClient, Settings
from tests.web.profiles import LEDGER
from web.access.users import Role, UserStore

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "tests.web.profiles:ledger_agent"
RUNS, CONCURRENCY = 12, 6  # each worker can hold half of the runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    def __init__(self, settings: Settings) -> None:
        self.env = {**os.environ, "REDIS_URL": settings.redis_url or "", "APPROVALS_PREFIX": settings.prefix}
        self.started: list[asyncio.subprocess.Process] = []
        self.drains: list[asyncio.Task[bytes]] = []

    async def start(self, *args: str, ready: str) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "web.cli", *args, cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self.started.append(process)
        assert process.stdout is not None
        async with asyncio.timeout(30):
            while ready not in (line := (await process.stdout.readline()).decode()):
                assert line, f"{args[0]} exited before it was ready"
        self.drains.append(asyncio.create_task(process.stdout.read()))  # keep the pipe drained
        return process

    async def stop_all(self) -> None:
        for process in self.started:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await asyncio.gather(*self.drains)


@pytest.fixture
async def processes(settings: Settings) -> AsyncIterator[Processes]:
    started = Processes(settings)
    yield started
    await started.stop_all()


async def until_true(check: Any, timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(0.05)
    return value


async def test_a_killed_workers_runs_finish_exactly_once_without_asking_twice(
    settings: Settings, processes: Processes
) -> None:
    async with ApprovalClient(settings, heartbeat=None) as client:
        users = UserStore(client.store)
        await users.add("root", "long enough pw", Role.ADMIN)
        await users.add("rev", "long enough pw", Role.REVIEWER)
        token = await users.create_token("root")
        reviewer = {"Authorization": f"Bearer {await users.create_token('rev')}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = await processes.start("serve", "--port", str(port), "--agent", PROFILE, ready="approvals is running")
    worker_args = ["worker", "--concurrency", str(CONCURRENCY), "--visibility-timeout", "2", "--agent", PROFILE]
    workers = [await processes.start(*worker_args, ready="taking runs") for _ in range(2)]
    tasks = [f"task {n}" for n in range(RUNS)]
    async with aiohttp.ClientSession(base, headers={"Authorization": f"Bearer {token}"}) as http:

        async def api(method: str, path: str, **kwargs: Any) -> Any:
            async with http.request(method, path, **kwargs) as response:
                assert response.status < 300, await response.text()
                return await response.json()

        run_ids = [(await api("POST", "/api/v1/runs", json={"task": task}))["id"] for task in tasks]

        async def all_asked() -> list[dict[str, Any]] | None:
            pending = (await api("GET", "/api/v1/approvals?limit=100"))["items"]
            return pending if len(pending) == RUNS else None

        pending = await until_true(all_asked)
        holders = {run_id: (await api("GET", f"/api/v1/runs/{run_id}"))["worker"] for run_id in run_ids}
        pids = {int(holder.rsplit(":", 1)[1]) for holder in holders.values()}
        assert pids == {w.pid for w in workers}  # both hold runs

        victim, survivor = workers
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
        assert {request["requested_by"] for request in pending} == {"root"}  # who submitted the runs
        for request in pending:  # four eyes: the submitter may not approve its runs' requests
            path = f"/api/v1/approvals/{request['id']}/decision"
            await api("POST", path, json={"outcome": "approve"}, headers=reviewer)

        async def all_finished() -> list[dict[str, Any]] | None:
            runs = [await api("GET", f"/api/v1/runs/{run_id}") for run_id in run_ids]
            return runs if all(r["status"] == "finished" for r in runs) else None

        finished = await until_true(all_finished)

    async with ApprovalClient(settings, heartbeat=None) as client:
        ledger = await client.store.redis.lrange(settings.prefix + LEDGER, 0, -1)
        counts = await client.store.counts()
    assert sorted(ledger) == sorted(tasks)  # every run acted exactly once
    assert counts[("default", "created")] == RUNS  # and asked exactly once
    assert all(len(run["approvals"]) == 1 for run in finished)
    assert [run["result"] for run in finished] == [f"done: {task}" for task in tasks]
    taken_over = [run for run in finished if holders[run["id"]].endswith(f":{victim.pid}")]
    assert taken_over and all(run["attempts"] == 2 for run in taken_over)
    assert all(run["worker"].endswith(f":{survivor.pid}") for run in finished)

    for process in (survivor, server):  # the others stop cleanly when told to
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
