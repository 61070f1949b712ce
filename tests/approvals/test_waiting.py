"""Waiting on a real Redis: wake-ups, decisions that came first, killed and re-made Pub/Sub connections."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from approvals import ApprovalClient, Settings, Status, WaitTimeout
from tests.conftest import ClientFactory, until
from tests.redis_server import RedisServer


async def test_waiter_wakes_on_decision_from_another_client(make_client: ClientFactory) -> None:
    agent = await make_client(requested_by="agent-1")
    reviewer = await make_client()
    request = await agent.create("deploy", {"version": "1.2"})
    waiting = asyncio.create_task(agent.wait(request.id))
    await until(lambda: agent.waiting == 1)
    decided = await reviewer.store.approve(request.id, by="alice")
    decision = await asyncio.wait_for(waiting, 5)
    assert decision == decided
    assert time.time() - decided.decided_at < 1.0
    assert agent.waiting == 0


async def test_decision_made_before_wait_starts_returns_at_once(client: ApprovalClient) -> None:
    request = await client.create("deploy")
    decided = await client.store.reject(request.id, by="alice", reason="frozen")
    started = time.monotonic()
    assert await client.wait(request.id) == decided
    assert time.monotonic() - started < 0.5


async def test_many_waiters_on_one_request_all_wake(client: ApprovalClient) -> None:
    request = await client.create("deploy")
    waiters = [asyncio.create_task(client.wait(request.id)) for _ in range(20)]
    await until(lambda: len(client.waiter._futures.get(request.id, [])) == 20)
    decided = await client.store.approve(request.id, by="alice")
    assert await asyncio.gather(*waiters) == [decided] * 20
    assert client.waiting == 0


async def test_decision_while_pubsub_connection_is_killed_still_wakes(
    client: ApprovalClient, settings: Settings
) -> None:
    requests = [await client.create("deploy", {"n": n}) for n in range(20)]
    waiters = [asyncio.create_task(client.wait(r.id)) for r in requests]
    await until(lambda: client.waiting == 20)
    rechecks = client.waiter.rechecks
    async with Redis.from_url(settings.redis_url or "") as admin:
        killed = await admin.client_kill_filter(_type="pubsub")
        assert killed >= 1
        # Decided while no Pub/Sub connection exists: these messages reach nobody.
        decisions = [await client.store.approve(r.id, by="alice") for r in requests]
    results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert results == decisions
    assert client.waiter.rechecks > rechecks  # woken by the re-check after re-subscribing


async def test_safety_sweep_finds_a_decision_whose_message_was_lost(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client(replace(settings, safety_sweep_interval=0.2))
    request = await client.create("deploy")
    waiting = asyncio.create_task(client.wait(request.id))
    await until(lambda: client.waiting == 1)
    # Write a decision as the decide script leaves it, but behind its back: no wake-up is published.
    async with client.store.redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            client.store.keys.request(request.id),
            mapping={"status": "approved", "decided_by": "alice", "decided_at": repr(time.time())},
        )
        pipe.zrem(client.store.keys.pending(), request.id)
        await pipe.execute()
    decision = await asyncio.wait_for(waiting, 5)
    assert (decision.status, decision.decided_by) == (Status.APPROVED, "alice")


async def test_wait_timeout_leaves_the_request_pending(client: ApprovalClient) -> None:
    request = await client.create("deploy", timeout=60)
    with pytest.raises(WaitTimeout) as caught:
        await client.wait(request.id, timeout=0.1)
    assert caught.value.request_id == request.id
    assert client.waiting == 0
    assert (await client.get(request.id)).pending


async def test_cancelled_waiter_is_forgotten(client: ApprovalClient) -> None:
    request = await client.create("deploy")
    waiting = asyncio.create_task(client.wait(request.id))
    await until(lambda: client.waiting == 1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert client.waiting == 0
    assert (await client.get(request.id)).pending  # a cancelled wait does not withdraw the request


async def test_waiter_count_does_not_change_connection_count(client: ApprovalClient, settings: Settings) -> None:
    async def connections() -> int:
        async with Redis.from_url(settings.redis_url or "", decode_responses=True) as admin:
            mine = [c for c in await admin.client_list() if c["name"].endswith(f":{__import__('os').getpid()}")]
            return len(mine)

    requests = await asyncio.gather(*(client.create("bulk", {"i": i}) for i in range(1000)))
    waiters = [asyncio.create_task(client.wait(r.id)) for r in requests]
    await until(lambda: client.waiting == 1000, timeout=20)
    during = await connections()
    assert during <= client.settings.pool_size + 1
    await asyncio.gather(*(client.store.approve(r.id, by="alice") for r in requests))
    assert all(d.approved for d in await asyncio.wait_for(asyncio.gather(*waiters), 20))
    assert await connections() <= client.settings.pool_size + 1


async def test_malformed_wake_up_message_does_not_stop_the_listener(client: ApprovalClient) -> None:
    first, second = await client.create("a"), await client.create("b")
    waiters = [asyncio.create_task(client.wait(r.id)) for r in (first, second)]
    await until(lambda: client.waiting == 2)
    await client.store.redis.publish(client.store.keys.decided_channel, f"{first.id}\nnot json")
    decided = await client.store.approve(second.id, by="alice")
    assert await asyncio.wait_for(waiters[1], 3) == decided
    waiters[0].cancel()


async def test_closing_the_client_ends_waits_in_progress(settings: Settings) -> None:
    from approvals import ClientClosed

    client = ApprovalClient(settings)
    await client.start()
    request = await client.create("deploy", timeout=3600)
    waiting = asyncio.create_task(client.wait(request.id))
    await until(lambda: client.waiting == 1)
    await client.aclose()
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(waiting, 2)


async def test_wait_timeout_holds_while_redis_is_down(make_client: ClientFactory, redis_server: RedisServer) -> None:
    client = await make_client(Settings(redis_url=redis_server.url, prefix="down:"))
    request = await client.create("deploy")
    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(WaitTimeout):
        await client.wait(request.id, timeout=0.5)
    assert time.monotonic() - started < 2
    redis_server.start()


async def test_silent_pubsub_connection_is_detected_and_replaced(
    make_client: ClientFactory, settings: Settings
) -> None:
    """A half-open connection (a NAT that dropped it) sends no error: only the missing pong tells."""
    async with FreezableProxy(settings.redis_url or "") as proxy:
        client = await make_client(replace(settings, redis_url=proxy.url, health_check_interval=0.2))
        request = await client.create("deploy")
        waiting = asyncio.create_task(client.wait(request.id))
        await until(lambda: client.waiting == 1)
        proxy.freeze_existing()
        await client.store.redis.connection_pool.disconnect()  # new command connections get through
        decided = await client.store.approve(request.id, by="alice")
        started = time.monotonic()
        assert await asyncio.wait_for(waiting, 10) == decided
        assert time.monotonic() - started < 3  # long before the 30 s safety sweep


class FreezableProxy:
    """A TCP proxy to Redis whose existing connections can be made to swallow all traffic."""

    def __init__(self, redis_url: str) -> None:
        target = redis_url.split("//", 1)[1].split("/", 1)[0]
        self._host, port = target.rsplit(":", 1)
        self._port = int(port)
        self._frozen: set[asyncio.StreamWriter] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def __aenter__(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def freeze_existing(self) -> None:
        self._frozen |= self._writers

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self._host, self._port)
        self._writers |= {writer, upstream_writer}
        for source, sink, key in ((reader, upstream_writer, writer), (upstream_reader, writer, writer)):
            task = asyncio.create_task(self._pump(source, sink, key))
            self._tasks.add(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, key: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            if key not in self._frozen:
                sink.write(data)
                await sink.drain()


async def test_a_tiny_wait_bound_ends_at_once_even_inside_a_redis_command(client: ApprovalClient) -> None:
    """The bound is checked between awaits: a cancellation landing in a Redis command could be swallowed."""
    request = await client.create("deploy")
    for timeout in (5e-324, 0.001, 0.05):
        started = time.monotonic()
        with pytest.raises(WaitTimeout):
            await asyncio.wait_for(client.wait(request.id, timeout=timeout), 5)
        assert time.monotonic() - started < 1
    assert (await client.get(request.id)).pending
