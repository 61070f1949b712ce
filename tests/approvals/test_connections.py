"""Connections: the embedded default is announced once; real Redis connections carry a per-process name."""

from __future__ import annotations

import logging
import os

import pytest
from redis.asyncio import Redis

from approvals import ApprovalClient, Settings
from approvals.connections import command_client, embedded_server, pubsub_client


async def test_embedded_store_is_announced_once_as_single_process(caplog: pytest.LogCaptureFixture) -> None:
    embedded_server.cache_clear()
    with caplog.at_level(logging.WARNING, logger="approvals"):
        async with ApprovalClient(Settings(prefix="a:")), ApprovalClient(Settings(prefix="b:")):
            pass
    announcements = [r for r in caplog.records if "embedded" in r.getMessage()]
    assert len(announcements) == 1
    assert "single process" in announcements[0].getMessage()


async def test_pool_and_pubsub_connections_are_named_for_this_process(settings: Settings) -> None:
    commands, pubsub = command_client(settings), pubsub_client(settings)
    try:
        await commands.ping()
        await pubsub.ping()
        async with Redis.from_url(settings.redis_url or "", decode_responses=True) as admin:
            names = {c["name"] for c in await admin.client_list()}
        assert {f"approvals:cmd:{os.getpid()}", f"approvals:sub:{os.getpid()}"} <= names
        assert commands.connection_pool.max_connections == settings.pool_size
    finally:
        await commands.aclose()
        await pubsub.aclose()
