"""Concurrency helpers: the sync face of async code, worker threads for sync tools, a rate limiter.

Sync tools run on the runtime's own thread pool, never on the event loop and never in the loop's
default executor (litellm uses that one; filling it stalls model calls).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import os
import queue
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

DEFAULT_TOOL_THREADS = 32


class BackgroundLoop:
    """The event loop behind every sync face of the process, in a daemon thread of its own.

    One loop for all sync calls, from any thread: model clients (their HTTP pools, TLS contexts)
    are made once and reused, where a new loop per call made them anew (34 ms of CPU per sync run
    against 3 ms for `arun`). Remade after a fork. At exit, what was registered with `at_exit`
    (models' clients) is closed on it, then it stops.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closers: dict[object, Callable[[], Any]] = {}  # key -> () -> the closer, or None if collected

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._start()
            assert self._loop is not None
            return self._loop

    def owns_current_thread(self) -> bool:
        return self._thread is threading.current_thread() and self._pid == os.getpid()

    def at_exit(self, key: object, closer: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Await `closer()` on this loop before it stops (one per `key`; a bound method is held weakly:
        an object collected before then is not kept alive for it)."""
        held: Callable[[], Any] = weakref.WeakMethod(closer) if inspect.ismethod(closer) else lambda: closer
        with self._lock:
            if (known := self._closers.get(key)) is None or known() is None:
                self._closers[key] = held

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        thread = threading.Thread(target=_serve, args=(loop, started), name="agent-runtime-loop", daemon=True)
        thread.start()
        started.wait()
        first = self._loop is None
        self._loop, self._thread, self._pid, self._closers = loop, thread, os.getpid(), {}
        if first:
            atexit.register(self.stop)

    def stop(self) -> None:
        with self._lock:
            loop, thread, closers = self._loop, self._thread, list(self._closers.values())
            self._loop = self._thread = None
            self._closers = {}
            if loop is None or thread is None or self._pid != os.getpid() or not thread.is_alive():
                return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_wind_down(closers), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


async def _wind_down(closers: list[Callable[[], Any]]) -> None:
    for held in closers:
        if (closer := held()) is not None:
            with contextlib.suppress(Exception):
                await closer()
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


background = BackgroundLoop()


@contextlib.contextmanager
def _loop_for_sync_call() -> Iterator[asyncio.AbstractEventLoop]:
    """The background loop; on the background loop's own thread (a sync callback of a sync run,
    which would wait for itself), a temporary loop in a helper thread."""
    if not background.owns_current_thread():
        yield background.loop()
        return
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="agent-runtime-sync", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def _submit(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], Coroutine[Any, Any, T]]
) -> tuple[concurrent.futures.Future[T], Callable[[], None]]:
    """Start `factory()` as a task on `loop`, in the caller's context; (its outcome, a way to cancel it)."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    tasks: list[asyncio.Task[T]] = []

    def start() -> None:  # runs on the loop, in the caller's context, which the task copies
        if done.set_running_or_notify_cancel():
            task = loop.create_task(factory())
            tasks.append(task)
            task.add_done_callback(functools.partial(_hand_over, done))

    def cancel() -> None:
        loop.call_soon_threadsafe(lambda: [task.cancel() for task in tasks])

    loop.call_soon_threadsafe(start, context=contextvars.copy_context())
    return done, cancel


def _hand_over(done: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    if task.cancelled():
        done.set_exception(asyncio.CancelledError())
    elif (error := task.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(task.result())


def _wait(done: concurrent.futures.Future[T], cancel: Callable[[], None]) -> T:
    try:
        return done.result()
    except BaseException:
        if not done.done():  # the caller was interrupted (Ctrl-C): stop the task and let it clean up
            cancel()
            with contextlib.suppress(BaseException):
                done.result(timeout=30)
        raise


def run_coroutine_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, on the background loop, in the caller's context.

    Called inside a running event loop (a notebook, sync code called from async code) it blocks that
    loop, as any sync call would.
    """
    with _loop_for_sync_call() as loop:
        return _wait(*_submit(loop, factory))


_DONE = object()


def iterate_async_sync(factory: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
    """Iterate an async generator from sync code, on the background loop (see `run_coroutine_sync`).

    Pull-based: the generator advances only when the caller asks for the next item, so stopping
    early (break, close) runs nothing more. One task runs it from first item to last (its timeouts
    and context stay with it) and closes it.
    """
    asks: asyncio.Queue[bool] = asyncio.Queue()
    items: queue.Queue[tuple[bool, Any]] = queue.Queue()
    with _loop_for_sync_call() as loop:
        done, cancel = _submit(loop, lambda: _pump(factory, asks, items))
        try:
            while True:
                loop.call_soon_threadsafe(asks.put_nowait, True)
                ok, value = items.get()
                if not ok:
                    raise value
                if value is _DONE:
                    return
                yield value
        finally:
            loop.call_soon_threadsafe(asks.put_nowait, False)
            _wait(done, cancel)


async def _pump(
    factory: Callable[[], AsyncIterator[T]], asks: asyncio.Queue[bool], items: queue.Queue[tuple[bool, Any]]
) -> None:
    try:
        generator = factory()
    except BaseException as error:
        items.put((False, error))
        return
    try:
        while await asks.get():
            try:
                item = await anext(generator)
            except StopAsyncIteration:
                items.put((True, _DONE))
                return
            except BaseException as error:  # handed to the consumer, raised there
                items.put((False, error))
                return
            items.put((True, item))
    except BaseException as error:  # cancelled while the consumer waits (the loop winds down): wake it
        items.put((False, error))
        raise
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
