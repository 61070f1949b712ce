"""Fixtures: a real redis-server for the session (unless REDIS_URL is set), a fresh key prefix per test."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from approvals import ApprovalClient, Settings
from tests.redis_server import RedisServer
from tests.webhooks import Receiver, receivers

FAST = {"expiry_sweep_interval": 0.05, "safety_sweep_interval": 30.0, "health_check_interval": 2.0}


def _require_real_redis() -> None:
    message = "redis-server is not installed; install it (apt-get install redis-server) or set REDIS_URL"
    if os.environ.get("REQUIRE_REAL_REDIS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: REDIS_URL if set, else a throwaway server on a free port of 127.0.0.1."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    if not RedisServer.available():
        _require_real_redis()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, for tests that stop and restart it."""
    if not RedisServer.available():
        _require_real_redis()
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def settings(redis_url: str) -> AsyncIterator[Settings]:
    """Settings on the real Redis with a prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    yield Settings(redis_url=redis_url, prefix=prefix, **FAST)
    async with Redis.from_url(redis_url) as redis:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await redis.delete(*keys)


@pytest.fixture(params=["redis", "embedded"])
def any_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """For logic that must behave the same on real Redis and on the embedded store."""
    if request.param == "embedded":
        return replace(settings, redis_url=None)
    return settings


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """`until` for a condition that has to read something (Redis, HTTP) to be checked."""
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


ClientFactory = Callable[..., Awaitable[ApprovalClient]]


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[ClientFactory]:
    """Start clients on `settings` (or given settings); all are closed after the test."""
    clients: list[ApprovalClient] = []

    async def make(client_settings: Settings | None = None, **kwargs: object) -> ApprovalClient:
        client = ApprovalClient(client_settings or settings, **kwargs)
        await client.start()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def client(make_client: ClientFactory) -> ApprovalClient:
    return await make_client(requested_by="agent-1")


@pytest.fixture
async def any_client(make_client: ClientFactory, any_settings: Settings) -> ApprovalClient:
    return await make_client(any_settings, requested_by="agent-1")


@pytest.fixture
async def receiver() -> AsyncIterator[Callable[[str], Receiver]]:
    """Webhook receivers on one loopback server: receiver("/a") is a receiver of its own (tests/webhooks.py)."""
    async with receivers() as make:
        yield make
