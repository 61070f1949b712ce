"""The expiry sweeper: decides overdue requests `expired` so they leave the queues even with no waiter.

Any number of processes may sweep at once: the decide script lets exactly one of them expire a request.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from .models import Decision
from .store import ApprovalStore
from .tasks import BackgroundTasks

log = logging.getLogger("approvals.expiry")

TRIM_EVERY = 60  # sweeps between trims of the history indexes


class ExpirySweeper:
    def __init__(self, store: ApprovalStore, interval: float | None = None) -> None:
        self._store = store
        self._interval = store.settings.expiry_sweep_interval if interval is None else interval
        self._tasks = BackgroundTasks()

    def start(self) -> None:
        if not self._tasks:
            self._tasks.spawn(self._run())

    async def aclose(self) -> None:
        await self._tasks.aclose()

    async def sweep(self) -> list[Decision]:
        """Expire everything overdue now, in batches; returns the expiries made."""
        expired: list[Decision] = []
        while batch := await self._store.expire_due():
            expired += batch
        return expired

    async def _run(self) -> None:
        sweeps = 0
        while True:
            await asyncio.sleep(self._interval)
            try:
                expired = await self.sweep()
                if expired:
                    log.debug("approvals: expired %d overdue request(s)", len(expired))
                if sweeps % TRIM_EVERY == 0:
                    await self._store.trim_history()
            except (RedisError, OSError) as error:
                log.warning("approvals: expiry sweep failed (%s); will retry", error)
            sweeps += 1
