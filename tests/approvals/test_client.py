"""ApprovalClient end to end on a real Redis: ask and wait, ownership, restarts of Redis and of agents."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from approvals import ApprovalClient, ClientClosed, Settings, Status, StoreUnavailable
from tests.conftest import FAST, ClientFactory, until
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


async def test_request_approval_returns_the_reviewers_decision(make_client: ClientFactory) -> None:
    agent = await make_client(requested_by="agent-1")
    reviewer = await make_client()

    async def review() -> None:
        while not (page := await reviewer.store.list_pending("email")).items:
            await asyncio.sleep(0.01)
        request = page.items[0]
        assert (request.requested_by, request.context) == ("agent-1", {"task": "notify bob"})
        await reviewer.store.approve(request.id, by="alice", edited_args={"to": "carol"})

    reviewing = asyncio.create_task(review())
    decision = await agent.request_approval(
        "send_email", {"to": "bob"}, queue="email", timeout=30, context={"task": "notify bob"}
    )
    await reviewing
    assert (decision.status, decision.decided_by, decision.args, decision.edited) == (
        Status.APPROVED, "alice", {"to": "carol"}, True,
    )  # fmt: skip


async def test_client_owns_its_tasks_and_connections(settings: Settings) -> None:
    before = set(asyncio.all_tasks())
    async with ApprovalClient(settings) as client:
        assert len(asyncio.all_tasks() - before) >= 3  # listener, safety sweep, expiry sweeper
        await client.create("x")
    assert asyncio.all_tasks() - before == set()
    with pytest.raises(ClientClosed):
        await client.create("x")


async def test_using_a_client_before_start_is_a_clear_error(settings: Settings) -> None:
    client = ApprovalClient(settings)
    with pytest.raises(ClientClosed, match="async with"):
        await client.request_approval("x")
    assert client.waiting == 0


async def test_unreachable_redis_is_a_clear_error_at_start() -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable, match="cannot reach Redis"):
        async with ApprovalClient(settings):
            pass


async def test_embedded_store_serves_a_whole_round_trip() -> None:
    async with ApprovalClient(Settings(prefix="embedded-test:"), requested_by="agent-1") as client:
        request = await client.create("deploy")
        waiting = asyncio.create_task(client.wait(request.id))
        await until(lambda: client.waiting == 1)
        decided = await client.store.reject(request.id, by="alice", reason="freeze")
        assert await waiting == decided


async def test_redis_restart_while_500_coroutines_wait(make_client: ClientFactory, redis_server: RedisServer) -> None:
    settings = Settings(redis_url=redis_server.url, prefix="restart:", **FAST)
    client = await make_client(settings, requested_by="agent-1")
    requests = await asyncio.gather(*(client.create("job", {"i": i}, timeout=300) for i in range(500)))
    waiters = [asyncio.create_task(client.wait(r.id)) for r in requests]
    await until(lambda: client.waiting == 500)
    rechecks = client.waiter.rechecks

    await asyncio.to_thread(redis_server.restart, 0.3)  # AOF keeps the requests across the restart

    reviewer = await make_client(settings)
    decisions = await asyncio.gather(*(reviewer.store.approve(r.id, by="alice") for r in requests))
    results = await asyncio.wait_for(asyncio.gather(*waiters), 30)
    assert results == decisions
    assert all(d.approved for d in results)
    assert client.waiter.rechecks > rechecks  # the re-subscription re-read what was decided meanwhile


AGENT = """
import asyncio, sys
from approvals import ApprovalClient, Settings

async def main():
    settings = Settings(redis_url=sys.argv[1], prefix=sys.argv[2])
    async with ApprovalClient(settings, requested_by="agent-7") as client:
        request = await client.create("deploy", {"version": 2}, idempotency_key="run-1:step-3:0")
        print(request.id, flush=True)
        await client.wait(request.id)

asyncio.run(main())
"""


async def test_agent_that_dies_while_waiting_finds_the_decision_when_it_asks_again(
    make_client: ClientFactory, settings: Settings
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AGENT, settings.redis_url or "", settings.prefix, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    request_id = (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()
    process.kill()
    await process.wait()

    reviewer = await make_client()
    decided = await reviewer.store.approve(request_id, by="alice", edited_args={"version": 3})

    restarted = await make_client(requested_by="agent-7")
    started = time.monotonic()
    decision = await restarted.request_approval("deploy", {"version": 2}, idempotency_key="run-1:step-3:0")
    assert decision == decided
    assert decision.args == {"version": 3}
    assert time.monotonic() - started < 1.0
    assert (await reviewer.store.list_pending()).total == 0
