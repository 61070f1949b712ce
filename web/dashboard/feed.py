"""The queue's live feed: one reader of the audit stream per process, fanned out to server-sent-event clients.

The stream is the source of truth, so a browser that reconnects with Last-Event-ID gets what it
missed, and a reader that loses Redis resumes from the last entry it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from approvals import ApprovalRequest, ApprovalStore, AuditEvent, RequestNotFound
from approvals.tasks import BackgroundTasks

log = logging.getLogger("approvals.web.live")

SUBSCRIBER_BACKLOG = 1000  # events a slow browser may fall behind before it is dropped (it reconnects)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    event: AuditEvent
    request: ApprovalRequest | None  # the request as it is now (None if it is gone)


@dataclass(slots=True)
class Subscriber:
    queue: asyncio.Queue[LiveEvent | None]  # None only wakes the reader up to look at `dropped`
    session_id: str | None = None
    dropped: bool = False  # fell behind or signed out: end the stream (a browser reconnects and replays)


class AuditFeed:
    def __init__(self, store: ApprovalStore, redis: Redis) -> None:
        self._store = store
        self._redis = redis  # a connection of its own: it blocks in XREAD
        self._subscribers: list[Subscriber] = []
        self._tasks = BackgroundTasks()

    def start(self) -> None:
        self._tasks.spawn(self._read())

    async def aclose(self) -> None:
        await self._tasks.aclose()
        for subscriber in self._subscribers:
            subscriber.dropped = True
        await self._redis.aclose()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str | None = None) -> AsyncIterator[Subscriber]:
        subscriber = Subscriber(asyncio.Queue(SUBSCRIBER_BACKLOG), session_id)
        self._subscribers.append(subscriber)
        try:
            yield subscriber
        finally:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(subscriber)

    def end_session(self, session_id: str) -> None:
        """Signing out ends that session's streams at once (other processes notice within a few seconds)."""
        for subscriber in self._subscribers:
            if subscriber.session_id == session_id:
                _end(subscriber)

    def end_streams(self) -> None:
        """The server is stopping: every stream ends now (browsers reconnect to whichever server is up),
        rather than at its next keep-alive, which the server's shutdown would wait for."""
        for subscriber in self._subscribers:
            _end(subscriber)

    async def replay(self, after: str, limit: int = 500) -> list[LiveEvent]:
        """Events after `after` (a reconnecting browser's Last-Event-ID)."""
        page = await self._store.read_audit(after=after, limit=limit)
        return [await self._live(event) for event in page.events]

    async def _read(self) -> None:
        last_id, backoff = "$", 0.1
        while True:
            try:
                replies = await self._redis.xread({self._store.keys.events: last_id}, block=5000, count=200)
                backoff = 0.1
            except (RedisError, OSError) as error:
                log.warning("approvals: audit feed lost Redis (%s); retrying in %.1f s", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for _, entries in replies or []:
                for event_id, fields in entries:
                    last_id = event_id
                    if self._subscribers:  # nobody watching: nothing to fetch (a browser replays on connect)
                        self._publish(await self._live(AuditEvent.from_entry(event_id, fields)))

    async def _live(self, event: AuditEvent) -> LiveEvent:
        try:
            request = await self._store.get(event.request_id)
        except (RequestNotFound, RedisError, OSError):
            request = None
        return LiveEvent(event, request)

    def _publish(self, event: LiveEvent) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscriber.dropped = True


def _end(subscriber: Subscriber) -> None:
    subscriber.dropped = True
    with contextlib.suppress(asyncio.QueueFull):
        subscriber.queue.put_nowait(None)  # wakes its reader; a full queue wakes it anyway
