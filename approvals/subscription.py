"""Listening to one Pub/Sub channel for the life of a process, whatever happens to the connection.

Used by the decision waiter (the `decided` channel) and by the runs feed (the `runs:changed` channel).
Messages are hints: whoever listens must be able to find out what it missed by reading Redis, which
`on_subscribe` is for: it is called on every subscription, the first one and redis-py's silent
re-subscription after a reconnect alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger("approvals.subscription")

MAX_BACKOFF = 5.0
SILENCE_LIMIT = 3  # health-check intervals without a word before the connection counts as dead


class Subscription:
    def __init__(
        self,
        redis: Redis,
        channel: str,
        on_message: Callable[[str], None],
        on_subscribe: Callable[[], None],
        health_interval: float,
    ) -> None:
        self._redis = redis
        self.channel = channel
        self._on_message = on_message
        self._on_subscribe = on_subscribe
        self._interval = health_interval

    async def run(self) -> None:
        """Listen until cancelled, re-making the connection with backoff whenever it fails."""
        backoff = 0.05
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._read(pubsub)
            except (RedisError, OSError) as error:
                log.warning("approvals: Pub/Sub on %s lost (%s); reconnecting in %.2f s", self.channel, error, backoff)
            except Exception:
                log.exception("approvals: Pub/Sub listener on %s failed; restarting in %.2f s", self.channel, backoff)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _read(self, pubsub: PubSub) -> None:
        """Dispatch messages until the connection fails or falls silent.

        redis-py's own health check only runs before a read, so an idle half-open connection would
        block forever: we PING when idle and re-make the connection if not even a pong comes back.
        """
        loop = asyncio.get_running_loop()
        last_heard = last_ping = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self._interval)
            now = loop.time()
            if message is not None:
                last_heard = now
                self._dispatch(message)
            elif now - last_heard > SILENCE_LIMIT * self._interval:
                raise ConnectionError(f"no reply on the Pub/Sub connection for {now - last_heard:.1f} s")
            if now - max(last_heard, last_ping) >= self._interval:
                await pubsub.ping()
                last_ping = now

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "message":
            try:
                self._on_message(message["data"])
            except (ValueError, KeyError, TypeError):
                log.exception("approvals: ignored a malformed message on %s: %.200r", self.channel, message["data"])
        elif message["type"] == "subscribe":
            self._on_subscribe()
