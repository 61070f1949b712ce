"""Waiting for decisions as coroutines: one Pub/Sub subscription per process, a future per waiter.

No lost wake-up: a waiter registers its future before it reads the request, and every subscribe
confirmation (including the ones redis-py sends itself after a silent reconnect) re-checks every
waited-on request in one pipelined read. A slow safety sweep re-checks too.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from prometheus_client import Histogram
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import validation as check
from .errors import AlreadyDecided, ClientClosed, WaitTimeout
from .models import ApprovalRequest, Decision
from .store import ApprovalStore
from .subscription import Subscription
from .tasks import BackgroundTasks

log = logging.getLogger("approvals.waiting")

T = TypeVar("T")

RECHECK_CHUNK = 1000  # ids per pipelined re-check read
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MAX_BACKOFF = 5.0


class DecisionWaiter:
    """Resolves `wait()` calls from the one Pub/Sub connection of this process."""

    def __init__(self, store: ApprovalStore, pubsub_redis: Redis) -> None:
        self._store = store
        self._redis = pubsub_redis
        self._channel = store.keys.decided_channel
        self._futures: dict[str, list[asyncio.Future[Decision]]] = {}
        self._deadlines: list[tuple[float, str]] = []  # (expires_at, request id): a heap, earliest first
        self._deadline_moved = asyncio.Event()
        self._tasks = BackgroundTasks()
        self._subscribed = asyncio.Event()
        self.rechecks = 0  # re-checks started, for tests and metrics
        self.wake_ups = 0  # futures resolved
        # Decision written -> waiter woken, for wake-ups by message. Not registered anywhere: whoever
        # serves /metrics collects it from this waiter (a process may hold several clients).
        self.wake_latency = Histogram(
            "approvals_wake_latency_seconds",
            "Decision written to waiting coroutine woken, in this process.",
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    @property
    def waiting(self) -> int:
        """How many requests this process is waiting on."""
        return len(self._futures)

    async def start(self, timeout: float = 10.0) -> None:
        """Subscribe, and return once the subscription is live."""
        interval = self._store.settings.health_check_interval
        subscription = Subscription(self._redis, self._channel, self._on_message, self._on_subscribed, interval)
        self._tasks.spawn(subscription.run())
        self._tasks.spawn(self._safety_sweep())
        self._tasks.spawn(self._expire_due())
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def aclose(self) -> None:
        """Stop listening; every wait still in progress raises `ClientClosed`."""
        await self._tasks.aclose()
        for futures in self._futures.values():
            for future in futures:
                if not future.done():
                    future.set_exception(ClientClosed())
        await self._redis.aclose()

    def expect(self, request_id: str) -> asyncio.Future[Decision]:
        """Register a wait before the request is read, or even written: no decision can slip by.
        Pair it with `forget` once done."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(request_id, []).append(future)
        return future

    async def wait(self, request_id: str, timeout: float | None = None) -> Decision:
        """The decision on `request_id`; at the request's deadline, an expiry (a denial).

        `timeout` bounds this wait only: on `WaitTimeout` the request stays pending.
        """
        check.request_id(request_id)
        if timeout is not None:
            check.seconds(timeout, "timeout")
        loop = asyncio.get_running_loop()
        future = self.expect(request_id)  # before reading: no lost wake-up
        # The bound is checked between awaits, never by cancelling one: redis-py may swallow a
        # cancellation that lands in a command, and the wait would then never end.
        deadline = None if timeout is None else loop.time() + timeout
        try:
            request = await _retrying(lambda: self._store.get(request_id), deadline)
            decision = None if request is None else await self.until_decided(request, future, deadline)
        finally:
            self.forget(request_id, future)
        if decision is None:
            raise WaitTimeout(request_id, timeout or 0.0)
        return decision

    async def until_decided(
        self, request: ApprovalRequest, future: asyncio.Future[Decision], deadline: float | None = None
    ) -> Decision | None:
        """The decision on `request`, read or written after `future` was registered (`expect`); None
        once `deadline` (loop time) passes without one. A wait with no deadline holds no timer of its
        own: one timer per process expires overdue requests."""
        decision = request.decision()
        if decision is not None:
            return decision
        self._expire_at(request.id, request.expires_at)
        if deadline is None:
            return await future
        await asyncio.wait([future], timeout=max(0.0, deadline - asyncio.get_running_loop().time()))
        return future.result() if future.done() else None

    # -- the requests' deadlines ---------------------------------------------------------------------

    def _expire_at(self, request_id: str, expires_at: float) -> None:
        heapq.heappush(self._deadlines, (expires_at, request_id))
        if expires_at <= self._deadlines[0][0]:
            self._deadline_moved.set()  # sooner than the timer was set for

    async def _expire_due(self) -> None:
        """At each deadline, expire the request ourselves rather than rely on a sweeper."""
        while True:
            self._deadline_moved.clear()
            if not self._deadlines:
                await self._deadline_moved.wait()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._deadline_moved.wait(), max(0.0, self._deadlines[0][0] - time.time()))
                continue
            due = []
            while self._deadlines and self._deadlines[0][0] <= time.time():
                _, request_id = heapq.heappop(self._deadlines)
                if request_id in self._futures:  # else decided meanwhile: nobody waits
                    due.append(request_id)
            decisions = await asyncio.gather(*(self._expire(i) for i in due))
            for request_id, decision in zip(due, decisions, strict=True):
                if decision is not None:
                    self._resolve(decision)
                elif request_id in self._futures:  # Redis's clock is behind ours, or Redis is away
                    heapq.heappush(self._deadlines, (time.time() + 1.0, request_id))

    async def _expire(self, request_id: str) -> Decision | None:
        try:
            return await _retrying(lambda: self._store.expire(request_id), time_limit=MAX_BACKOFF)
        except AlreadyDecided as error:
            return error.decision

    def forget(self, request_id: str, future: asyncio.Future[Decision]) -> None:
        futures = self._futures.get(request_id)
        if futures is None:
            return
        with contextlib.suppress(ValueError):
            futures.remove(future)
        if not futures:
            del self._futures[request_id]
            if len(self._deadlines) > 2 * len(self._futures) + 1000:  # mostly decided long before their deadline
                self._deadlines = [entry for entry in self._deadlines if entry[1] in self._futures]
                heapq.heapify(self._deadlines)

    def _resolve(self, decision: Decision) -> None:
        for future in self._futures.get(decision.request_id, ()):
            if not future.done():
                future.set_result(decision)
                self.wake_ups += 1

    def _on_message(self, payload: str) -> None:
        request_id, _, _ = payload.partition("\n")
        if request_id in self._futures:  # other processes' decisions cost only this lookup
            decision = Decision.from_message(payload)
            self._resolve(decision)
            self.wake_latency.observe(max(0.0, time.time() - decision.decided_at))

    # -- background tasks --------------------------------------------------------------------------

    def _on_subscribed(self) -> None:
        # First subscription or redis-py's silent re-subscription after a reconnect:
        # decisions published while we were not listening are found by reading.
        self._subscribed.set()
        self._tasks.spawn(self.recheck())

    async def _safety_sweep(self) -> None:
        while True:
            await asyncio.sleep(self._store.settings.safety_sweep_interval)
            await self.recheck()

    async def recheck(self, request_ids: Iterable[str] | None = None, attempts: int = 8) -> None:
        """Read the waited-on requests (all, by default) and resolve those that were decided.

        Retries with backoff while Redis is still coming back; the safety sweep covers the rest.
        """
        self.rechecks += 1
        ids = list(self._futures if request_ids is None else request_ids)
        for start in range(0, len(ids), RECHECK_CHUNK):
            chunk = ids[start : start + RECHECK_CHUNK]
            for attempt in range(attempts):
                try:
                    left = await self._store.not_pending(chunk)  # usually none: a cheap look first
                    decisions = await self._store.decisions(left) if left else {}
                    break
                except (RedisError, OSError) as error:
                    log.warning("approvals: re-check of waiting requests failed (%s); retrying", error)
                    await asyncio.sleep(min(0.05 * 2**attempt, MAX_BACKOFF))
            else:
                continue  # the safety sweep will try these again
            for decision in decisions.values():
                self._resolve(decision)


async def _retrying(
    operation: Callable[[], Awaitable[T]], deadline: float | None = None, *, time_limit: float | None = None
) -> T | None:
    """Run a read or write for a waiter; Redis being away for a while must not fail the wait.
    None if Redis is still away at `deadline` (loop time), or after `time_limit` seconds."""
    loop = asyncio.get_running_loop()
    if time_limit is not None:
        deadline = loop.time() + time_limit
    backoff = 0.05
    while True:
        try:
            return await operation()
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            log.debug("approvals: waiter could not reach Redis (%s); retrying in %.2f s", error, backoff)
        if deadline is not None and loop.time() + backoff >= deadline:
            return None
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)
