"""A burst of asks queues and never fails: creates share round trips on a few connections."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis

from approvals import InvalidRequest, Settings, Status
from approvals.batching import ScriptBatcher
from tests.conftest import ClientFactory


async def test_five_thousand_asks_at_once_on_two_connections_all_wait_and_all_wake(
    make_client: ClientFactory, settings: Settings
) -> None:
    reviewer = await make_client()
    agent = await make_client(replace(settings, pool_size=2), requested_by="burst")  # at most 2 command connections
    asks = [
        asyncio.create_task(agent.request_approval("deploy", {"n": n}, queue="burst", timeout=120)) for n in range(5000)
    ]
    pending = reviewer.store.keys.pending("burst")
    while await reviewer.store.redis.zcard(pending) < 5000:
        await asyncio.sleep(0.05)
    assert not any(ask.done() for ask in asks)  # none failed for want of a connection

    ids = await reviewer.store.redis.zrange(pending, 0, -1)
    await asyncio.gather(*(reviewer.store.approve(request_id, by="alice") for request_id in ids))
    decisions = await asyncio.wait_for(asyncio.gather(*asks), timeout=60)
    assert {decision.status for decision in decisions} == {Status.APPROVED}
    assert sorted(decision.args["n"] for decision in decisions) == list(range(5000))


async def test_a_bad_ask_in_a_burst_fails_alone(make_client: ClientFactory) -> None:
    agent = await make_client(requested_by="burst")
    bad = {25: {"args": {"n": float("nan")}}, 30: {"timeout": -1}}  # not JSON; a negative lifetime
    asks = [agent.create("deploy", **{"args": {"n": n}, "queue": "mixed", **bad.get(n, {})}) for n in range(50)]
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert [n for n, result in enumerate(results) if isinstance(result, InvalidRequest)] == [25, 30]
    assert await agent.store.redis.zcard(agent.store.keys.pending("mixed")) == 48


async def _echo_batcher(redis: Redis, **kwargs: Any) -> ScriptBatcher:
    script = redis.register_script("if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]")
    return ScriptBatcher(redis, script, **kwargs)


async def test_batcher_gives_each_caller_its_own_reply_or_error_in_few_round_trips(redis_url: str) -> None:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        batcher = await _echo_batcher(redis, max_batch=64, max_in_flight=2)
        pipelines = 0
        real_pipeline = redis.pipeline

        def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
            nonlocal pipelines
            pipelines += 1
            return real_pipeline(*args, **kwargs)

        redis.pipeline = counting_pipeline  # type: ignore[method-assign]
        values = ["boom" if n == 7 else str(n) for n in range(1000)]
        results = await asyncio.gather(
            *(batcher(lambda value=value: ([], [value], value.upper())) for value in values), return_exceptions=True
        )
        await batcher.aclose()
    assert isinstance(results[7], Exception) and "boom" in str(results[7])
    assert [result for n, result in enumerate(results) if n != 7] == [(str(n), str(n)) for n in range(1000) if n != 7]
    assert pipelines <= 1000 // 64 + 2  # batched: about one round trip per 64 calls, not one per call


async def test_batcher_leaves_out_callers_who_gave_up_and_reports_build_errors_to_their_caller(
    redis_url: str,
) -> None:
    async with Redis.from_url(redis_url, decode_responses=True) as redis:
        batcher = await _echo_batcher(redis)
        built: list[str] = []

        def call(value: str) -> Any:
            built.append(value)
            if value == "bad":
                raise ValueError("cannot build")
            return [], [value], None

        kept = asyncio.ensure_future(batcher(lambda: call("kept")))
        dropped = asyncio.ensure_future(batcher(lambda: call("dropped")))
        bad = asyncio.ensure_future(batcher(lambda: call("bad")))
        dropped.cancel()  # before the batch is built: it is never sent
        assert await kept == ("kept", None)
        with pytest.raises(ValueError, match="cannot build"):
            await bad
        assert dropped.cancelled()
        await batcher.aclose()
    assert built == ["kept", "bad"]
