"""Which runs changed, heard once per process from the runs channel and passed to whoever cares.

Server processes use it to push a run's steps to browsers and API clients as they happen; workers
use it to hear that a run they hold was cancelled. A notice only says *which* run changed: readers
then read the run from Redis, so a notice lost while the connection was down costs nothing but
time: every re-subscription wakes every reader to read again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from redis.asyncio import Redis

from approvals import ApprovalStore
from approvals.subscription import Subscription
from approvals.tasks import BackgroundTasks

# A listener gets (run id, what changed: 'queued', 'running', 'step', 'finished', 'failed', 'cancelled'),
# or (None, 'resubscribed') when notices may have been missed.
Listener = Callable[[str | None, str], None]


class RunFeed:
    def __init__(self, store: ApprovalStore, redis: Redis) -> None:
        self._redis = redis  # the Pub/Sub connection of its own
        self._subscription = Subscription(
            redis, store.keys.runs_channel, self._on_message, self._on_subscribed, store.settings.health_check_interval
        )
        self._watchers: dict[str | None, set[asyncio.Event]] = {}
        self._listeners: list[Listener] = []
        self._subscribed = asyncio.Event()
        self._tasks = BackgroundTasks()
        self.closing = False  # the server is stopping: streams that wake end

    async def start(self, timeout: float = 10.0) -> None:
        self._tasks.spawn(self._subscription.run())
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def aclose(self) -> None:
        await self._tasks.aclose()
        for events in self._watchers.values():
            for event in events:
                event.set()  # let readers see the end
        await self._redis.aclose()

    def end_streams(self) -> None:
        """The server is stopping: wake every watcher, which sees `closing` and ends its stream."""
        self.closing = True
        for events in self._watchers.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def watch(self, run_id: str | None = None) -> Iterator[asyncio.Event]:
        """An event set whenever run `run_id` (or, with None, any run) may have changed; clear it, then read."""
        event = asyncio.Event()
        self._watchers.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._watchers.get(run_id, set())
            events.discard(event)
            if not events:
                self._watchers.pop(run_id, None)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _on_message(self, payload: str) -> None:
        run_id, _, change = payload.partition("\n")
        for key in (run_id, None):
            for event in self._watchers.get(key, ()):
                event.set()
        for listener in self._listeners:
            listener(run_id, change)

    def _on_subscribed(self) -> None:
        self._subscribed.set()
        for events in self._watchers.values():
            for event in events:
                event.set()
        for listener in self._listeners:
            listener(None, "resubscribed")
