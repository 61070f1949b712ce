"""Background tasks that belong to an object: started by it, cancelled and awaited when it closes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Cancel every task and wait until all have ended.

        Cancels again until each task is done: Python 3.11's `asyncio.wait_for` (used inside redis-py)
        can swallow a cancellation that arrives as the awaited operation completes.
        """
        while self._tasks:  # tasks may spawn tasks while they end
            for task in self._tasks:
                task.cancel()
            await asyncio.wait(set(self._tasks), timeout=0.1)

    async def wait(self, timeout: float) -> None:
        """Wait up to `timeout` for the running tasks to end by themselves."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    def __len__(self) -> int:
        return len(self._tasks)
