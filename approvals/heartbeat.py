"""Process heartbeats: every client process says, every few seconds, how many coroutines it has waiting.

The ops page and `/metrics` read them to show waiting agents per process; silent processes drop out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from .store import ApprovalStore
from .tasks import BackgroundTasks

log = logging.getLogger("approvals.heartbeat")

INTERVAL = 5.0
STALE_AFTER = 3 * INTERVAL
MIN_GAP = 1.0  # seconds between beats at the most


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    process_id: str
    role: str
    host: str
    pid: int
    waiting: int
    seen_at: float
    details: dict[str, Any] = field(default_factory=dict)  # what the process adds (a worker: its runs)


class Heartbeat:
    def __init__(self, store: ApprovalStore, waiting: Callable[[], int], role: str, interval: float = INTERVAL) -> None:
        self._store = store
        self._waiting = waiting
        self.details: Callable[[], dict[str, Any]] | None = None
        self.role = role
        self.interval = interval
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{role}"
        self._tasks = BackgroundTasks()
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._tasks.spawn(self._run())

    async def aclose(self) -> None:
        await self._tasks.aclose()
        with contextlib.suppress(RedisError, OSError):  # if Redis is away, the entry goes stale and drops out
            await self._store.redis.hdel(self._store.keys.processes, self.process_id)

    async def beat(self) -> None:
        info = {"role": self.role, "host": socket.gethostname(), "pid": os.getpid(), "waiting": self._waiting()}
        info["seen_at"] = time.time()
        if self.details is not None:
            info["details"] = self.details()
        await self._store.redis.hset(self._store.keys.processes, self.process_id, json.dumps(info))

    def beat_soon(self) -> None:
        """Beat now rather than at the next interval (what the process reports has changed)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.beat()
            except (RedisError, OSError) as error:
                log.warning("approvals: heartbeat failed (%s)", error)
            await asyncio.sleep(MIN_GAP)  # however often `beat_soon` is called
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval - MIN_GAP)


async def live_processes(store: ApprovalStore, stale_after: float = STALE_AFTER) -> list[ProcessInfo]:
    """Processes seen recently, busiest first; entries gone stale are removed."""
    entries = await store.redis.hgetall(store.keys.processes)
    now = time.time()
    live, stale = [], []
    for process_id, raw in entries.items():
        info = json.loads(raw)
        if now - info["seen_at"] > stale_after:
            stale.append(process_id)
            continue
        live.append(
            ProcessInfo(
                process_id, info["role"], info["host"], info["pid"], info["waiting"], info["seen_at"],
                info.get("details", {}),
            )
        )  # fmt: skip
    if stale:
        await store.redis.hdel(store.keys.processes, *stale)
    return sorted(live, key=lambda p: (-p.waiting, p.process_id))
