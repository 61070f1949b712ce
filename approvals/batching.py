"""Many calls of one Lua script in few round trips: a burst of asks queues, it never fails.

Every call made while a round trip is in flight joins the next pipeline (up to `max_batch` calls
each), and at most `max_in_flight` pipelines are in flight at once: the rest of the callers wait in
order, with no timeout of their own. 100,000 coroutines asking at once cost some 400 round trips
on a few connections instead of 100,000 round trips fighting over the pool. A call is handed in
unbuilt (a function that returns its keys and arguments): the batcher builds a pipeline's worth at
a time, so a burst's checks and building cost the event loop one slice at a time.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from .tasks import BackgroundTasks

MAX_BATCH = 256
MAX_IN_FLIGHT = 4

Call = Callable[[], tuple[list[str], list[Any], Any]]  # builds (KEYS, ARGV, what the caller gets back with the reply)


class ScriptBatcher:
    def __init__(
        self, redis: Redis, script: AsyncScript, *, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        self._redis = redis
        self._script = script
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: collections.deque[tuple[Call, asyncio.Future[Any]]] = collections.deque()
        self._flushers = BackgroundTasks()

    async def __call__(self, call: Call) -> tuple[Any, Any]:
        """(the script's reply, what `call` returned beside its keys and arguments), as if called alone:
        an error of this call (building it, or in Redis) is raised here, not in the others' calls."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((call, future))
        if len(self._flushers) < self._max_in_flight:
            self._flushers.spawn(self._flush())
        reply: tuple[Any, Any] = await future
        return reply

    async def aclose(self) -> None:
        await self._flushers.aclose()
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.cancel()

    async def _flush(self) -> None:
        """Send what is queued, a pipeline at a time, until nothing is left."""
        await asyncio.sleep(0)  # let this loop turn's callers join the first pipeline
        while self._queue:
            batch = _built([self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))])
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[Built]) -> None:
        """One round trip; each caller gets its own reply, or the error that failed the round trip."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for keys, args, _, _ in batch:
                    await self._script(keys=keys, args=args, client=pipe)
                replies = await pipe.execute(raise_on_error=False)
        except Exception as error:
            replies = [error] * len(batch)
        except BaseException:
            for *_, future in batch:
                future.cancel()
            raise
        for (_, _, extra, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result((reply, extra))


Built = tuple[list[str], list[Any], Any, "asyncio.Future[Any]"]


def _built(calls: list[tuple[Call, asyncio.Future[Any]]]) -> list[Built]:
    """Each call built (its error goes to its own caller); those whose callers gave up are left out."""
    built = []
    for call, future in calls:
        if future.done():
            continue
        try:
            keys, args, extra = call()
        except Exception as error:
            future.set_exception(error)
            continue
        built.append((keys, args, extra, future))
    return built
