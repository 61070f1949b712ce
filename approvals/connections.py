"""Redis clients for the approval core: a bounded pool for commands and a separate client for Pub/Sub.

With no REDIS_URL both talk to one in-process fakeredis server, shared by everything in the process.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from .settings import Settings

log = logging.getLogger("approvals")


@functools.cache
def embedded_server() -> Any:
    """The process-wide fakeredis server behind the embedded default (one per process by nature)."""
    import fakeredis

    log.warning(
        "approvals: no REDIS_URL set, using the embedded in-process store; it is for a single process only "
        "and keeps nothing across restarts. Set REDIS_URL=redis://127.0.0.1:6379/0 to share and keep data."
    )
    return fakeredis.FakeServer()


def client_name(role: str) -> str:
    """The CLIENT SETNAME of this process's connections, so ops can count them per process."""
    return f"approvals:{role}:{os.getpid()}"


def command_client(settings: Settings) -> Redis:
    """Commands go through a blocking pool: past `pool_size` busy connections callers wait, never fail."""
    options: dict[str, Any] = {
        "max_connections": settings.pool_size,
        "timeout": settings.pool_timeout,
        "decode_responses": True,
        "client_name": client_name("cmd"),
        "socket_connect_timeout": 5.0,
        "health_check_interval": settings.health_check_interval,
    }
    if settings.redis_url is None:
        return _embedded_client(BlockingConnectionPool, options)
    return Redis.from_pool(BlockingConnectionPool.from_url(settings.redis_url, **options))


def pubsub_client(settings: Settings, role: str = "sub") -> Redis:
    """The client behind the one Pub/Sub connection per process (or another long blocking read).

    `socket_timeout=None`: redis-py's 5 s default would re-send the blocking read on a new connection.
    The waiter PINGs it when idle (see `DecisionWaiter`), so a silently dead connection is re-made.
    """
    options: dict[str, Any] = {
        "max_connections": 1,
        "timeout": None,
        "decode_responses": True,
        "client_name": client_name(role),
        "socket_timeout": None,
        "socket_connect_timeout": 5.0,
        "socket_keepalive": True,
    }
    if settings.redis_url is None:
        return _embedded_client(BlockingConnectionPool, options)
    return Redis.from_pool(BlockingConnectionPool.from_url(settings.redis_url, **options))


def _embedded_client(pool_class: type[BlockingConnectionPool], options: dict[str, Any]) -> Redis:
    from fakeredis.aioredis import FakeRedis

    # No socket and nothing to health-check: fakeredis answers in-process.
    options = {k: v for k, v in options.items() if not k.startswith("socket_") and k != "health_check_interval"}
    client: Redis = FakeRedis(server=embedded_server(), connection_pool_class=pool_class, **options)
    return client
