"""Concurrency helpers: the sync face of async code, worker threads for sync tools, a rate limiter.

Sync tools run on the runtime's own thread pool, never on the event loop and never in the loop's
default executor (litellm uses that one; filling it stalls model calls).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_TOOL_THREADS = 32


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_coroutine_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code.

    Inside a running event loop (a notebook, or sync code called from async code) it runs on a new
    loop in a helper thread and blocks the caller, as any sync call would.
    """
    if not _loop_running():
        return asyncio.run(factory())
    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="agent-runtime-sync") as pool:
        return pool.submit(context.run, asyncio.run, factory()).result()


_DONE = object()


def iterate_async_sync(factory: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Iterate an async generator from sync code, on a loop of its own in a helper thread.

    Pull-based: the generator advances only when the caller asks for the next item, so stopping
    early (break, close) runs nothing more; the generator is closed on its own loop.
    """
    requests: queue.Queue[bool] = queue.Queue()
    items: queue.Queue[tuple[bool, Any]] = queue.Queue()
    thread = threading.Thread(
        target=asyncio.run, args=(_pump(factory, requests, items),), name="agent-runtime-stream", daemon=True
    )
    thread.start()
    try:
        while True:
            requests.put(True)
            ok, value = items.get()
            if not ok:
                raise value
            if value is _DONE:
                return
            yield value
    finally:
        requests.put(False)
        thread.join()


async def _pump(
    factory: Callable[[], AsyncIterator[T]], requests: queue.Queue[bool], items: queue.Queue[tuple[bool, Any]]
) -> None:
    generator = factory()
    try:
        while await asyncio.to_thread(requests.get):
            try:
                item = await anext(generator)
            except StopAsyncIteration:
                items.put((True, _DONE))
                return
            except BaseException as error:  # handed to the consumer, raised there
                items.put((False, error))
                return
            items.put((True, item))
    finally:
        close = getattr(generator, "aclose", None)
        if close is not None:
            await close()


class ThreadLimiter:
    """A bounded pool of worker threads for sync tools."""

    def __init__(self, max_threads: int = DEFAULT_TOOL_THREADS) -> None:
        self.max_threads = max_threads
        self._executor = ThreadPoolExecutor(max_threads, thread_name_prefix="agent-runtime-tool")

    async def run(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        context = contextvars.copy_context()
        call = functools.partial(context.run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@functools.cache
def default_thread_limiter() -> ThreadLimiter:
    """The process-wide pool for sync tools (one, like anyio's default limiter, but ours)."""
    return ThreadLimiter()


class RateLimiter:
    """At most `requests_per_minute` calls, spaced evenly; waiting callers sleep, never block the loop.

    Safe to share between agents, event loops and threads: slots are handed out under a lock.
    """

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            return slot - now

    async def acquire(self) -> None:
        if self.interval:
            delay = self._reserve()
            if delay > 0:
                await asyncio.sleep(delay)
