"""Workers on a real Redis: runs taken from the stream, and taken over after a worker dies."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from approvals import ApprovalClient, ApprovalRequest, InvalidRequest, Settings, Status
from approvals.models import Page
from tests.conftest import ClientFactory, until
from tests.web.profiles import echo_agent
from web.runs.profiles import demo_agent
from web.runs.store import RunNotFound, RunStatus, RunStore
from web.runs.worker import Worker


@pytest.fixture
async def runs(client: ApprovalClient) -> RunStore:
    return RunStore(client.store)


async def start(worker: Worker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.run())


async def stop(worker: Worker, task: asyncio.Task[None], grace: float = 0.0) -> None:
    worker.stop()
    await task
    await worker.drain(grace)


async def one_pending(client: ApprovalClient) -> ApprovalRequest:
    for _ in range(500):
        page = await client.store.list_pending()
        if page.items:
            return page.items[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no approval was asked")


async def finished(runs: RunStore, run_id: str) -> None:
    for _ in range(500):
        if (await runs.get(run_id)).finished_at is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the run did not finish")


async def test_a_worker_runs_a_submitted_run_through_its_approval(client: ApprovalClient, runs: RunStore) -> None:
    worker = Worker(runs, client, demo_agent, concurrency=4, name="w1")
    task = await start(worker)
    run = await runs.submit("archive last year's logs", "demo")
    request = await one_pending(client)
    assert (request.run_id, request.idempotency_key) == (run.id, f"{run.id}:1:0")
    assert (await runs.get(run.id)).status is RunStatus.RUNNING
    await client.store.approve(request.id, by="alice")
    await finished(runs, run.id)
    done = await runs.get(run.id)
    assert (done.status, done.result, done.worker, done.attempts) == (
        RunStatus.FINISHED, "approved: Carry out: archive last year's logs", "w1", 1,
    )  # fmt: skip
    steps = await runs.steps(run.id)
    assert [s["final"] for s in steps] == [False, True]
    await stop(worker, task)


async def test_runs_of_a_dead_worker_are_taken_over_and_not_asked_twice(client: ApprovalClient, runs: RunStore) -> None:
    first = Worker(runs, client, demo_agent, visibility_timeout=0.6, name="dies")
    first_task = await start(first)
    run = await runs.submit("restart the cache", "demo")
    request = await one_pending(client)
    await stop(first, first_task)  # it dies while its run waits: nothing acknowledged
    await client.store.approve(request.id, by="alice")  # decided while no worker holds the run

    second = Worker(runs, client, demo_agent, visibility_timeout=0.6, name="takes-over")
    second_task = await start(second)
    await finished(runs, run.id)
    done = await runs.get(run.id)
    assert (done.status, done.worker, done.attempts) == (RunStatus.FINISHED, "takes-over", 2)
    assert done.result == "approved: Carry out: restart the cache"
    assert (await client.store.list_decided()).total == 1  # the approval was asked once
    await stop(second, second_task)


async def test_a_worker_keeps_its_claim_while_a_run_waits_long(client: ApprovalClient, runs: RunStore) -> None:
    holder = Worker(runs, client, demo_agent, visibility_timeout=0.3, name="holder")
    other = Worker(runs, client, demo_agent, visibility_timeout=0.3, name="other")
    tasks = [await start(holder), await start(other)]
    run = await runs.submit("wait a while", "demo")
    request = await one_pending(client)
    await asyncio.sleep(1.0)  # three visibility timeouts: the holder renews its claim meanwhile
    await until(lambda: holder.active + other.active == 1)
    await client.store.approve(request.id, by="alice")
    await finished(runs, run.id)
    assert (await runs.get(run.id)).attempts == 1
    assert (await client.store.get(request.id)).status is Status.APPROVED
    for worker, task in ((holder, tasks[0]), (other, tasks[1])):
        await stop(worker, task)


async def test_bad_runs_are_refused(runs: RunStore) -> None:
    for task in ("", "   ", 5, "x" * 30_000):
        with pytest.raises(InvalidRequest, match="task"):
            await runs.submit(task, "demo")


async def test_a_stopping_worker_hands_its_runs_back_at_once(client: ApprovalClient, runs: RunStore) -> None:
    leaving = Worker(runs, client, demo_agent, visibility_timeout=30, name="leaving")
    leaving_task = await start(leaving)
    run = await runs.submit("rebuild the index", "demo")
    request = await one_pending(client)
    await stop(leaving, leaving_task, grace=0)  # not finished in time: handed back
    staying = Worker(runs, client, demo_agent, visibility_timeout=30, name="staying")
    staying_task = await start(staying)
    await until(lambda: staying.active == 1, timeout=5)  # at once, not after the 30 s timeout
    await client.store.approve(request.id, by="alice")
    await finished(runs, run.id)
    done = await runs.get(run.id)
    assert (done.status, done.worker, done.attempts) == (RunStatus.FINISHED, "staying", 2)
    await stop(staying, staying_task)


async def test_a_stalled_worker_that_lost_its_run_does_not_act_on_it(
    client: ApprovalClient, runs: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that stopped renewing its claim (stalled, partitioned) but still runs: once another
    worker has taken the run over, the stalled one's next step is refused and it stops there."""
    from tests.web.profiles import LEDGER, ledger_agent

    stalled = Worker(runs, client, ledger_agent, visibility_timeout=0.3, name="stalled")

    async def no_renewal() -> None:
        await asyncio.Event().wait()

    async def no_reclaims(count: int) -> list[tuple[str, str]]:
        return []

    monkeypatch.setattr(stalled, "_keep_claims", no_renewal)
    monkeypatch.setattr(stalled, "_reclaim", no_reclaims)
    stalled_task = await start(stalled)
    run = await runs.submit("pay the invoice", "x")
    request = await one_pending(client)
    taker = Worker(runs, client, ledger_agent, visibility_timeout=0.3, name="taker")
    taker_task = await start(taker)
    await until(lambda: taker.active == 1)
    await asyncio.sleep(0.3)  # the taker re-runs up to the same question (same idempotency key)
    await client.store.approve(request.id, by="alice")  # both wake up
    await finished(runs, run.id)
    await until(lambda: stalled.active == 0)
    assert await client.store.redis.lrange(client.store.keys.prefix + LEDGER, 0, -1) == ["pay the invoice"]
    done = await runs.get(run.id)
    assert (done.worker, done.attempts, [s["step"] for s in await runs.steps(run.id)]) == ("taker", 2, [1, 2, 3])
    for worker, task in ((stalled, stalled_task), (taker, taker_task)):
        await stop(worker, task)


async def test_run_state_changes_happen_once_and_in_order(runs: RunStore) -> None:
    run = await runs.submit("tidy up", "demo")
    assert await runs.counts() == {"queued": 1, "running": 0, "finished": 0, "failed": 0, "cancelled": 0, "waiting": 0}
    first = await runs.started(run.id, "a")
    second = await runs.started(run.id, "b")  # taken over
    assert (first, second) == (1, 2)
    assert await runs.add_step(run.id, 1, {"step": 1}) == "superseded"
    assert await runs.add_step(run.id, 2, {"step": 1, "model_output": "x" * 50_000}) == "running"
    assert [len(s["model_output"]) for s in await runs.steps(run.id)] == [20_000]
    assert await runs.finish(run.id, RunStatus.FAILED, attempt=1, error="stalled") == "superseded"
    assert await runs.finish(run.id, RunStatus.FINISHED, attempt=2, result={"ok": True}) == "ok"
    assert await runs.finish(run.id, RunStatus.FAILED, attempt=2, error="late") == "finished"
    assert await runs.add_step(run.id, 2, {"step": 2}) == "finished"
    assert await runs.started(run.id, "c") is None
    done = await runs.get(run.id)
    assert (done.status, done.result, done.error, done.worker) == (RunStatus.FINISHED, {"ok": True}, None, "b")
    assert (await runs.counts())["finished"] == 1 and (await runs.counts())["running"] == 0
    assert [r.id for r in (await runs.list_runs("finished")).items] == [run.id]
    with pytest.raises(InvalidRequest, match="state"):
        await runs.list_runs("sleeping")


async def test_ended_runs_are_kept_for_the_retention_time_and_the_queue_is_trimmed(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = await make_client(replace(settings, retention=1.0))
    runs = RunStore(client.store)
    worker = Worker(runs, client, demo_agent, name="w")
    task = await start(worker)
    submitted = [await runs.submit(f"job {n}", "demo") for n in range(3)]
    for request in (await until_asked(client, 3)).items:
        await client.store.approve(request.id, by="alice")
    for run in submitted:
        await finished(runs, run.id)
    assert 0 < await client.store.redis.ttl(client.store.keys.run(submitted[0].id)) <= 1
    assert 0 < await client.store.redis.ttl(client.store.keys.run_steps(submitted[0].id)) <= 1
    await until(lambda: worker.active == 0)
    assert await runs.trim() == 0  # not past retention yet, but every entry of the queue is done with
    assert await client.store.redis.xlen(client.store.keys.run_queue) == 1
    await asyncio.sleep(1.1)
    assert await runs.trim() == 3
    assert (await runs.list_runs("all")).total == 0 and (await runs.counts())["finished"] == 0
    with pytest.raises(RunNotFound):
        await runs.get(submitted[0].id)
    await stop(worker, task)


async def until_asked(client: ApprovalClient, count: int) -> Page[ApprovalRequest]:
    for _ in range(500):
        page = await client.store.list_pending()
        if page.total == count:
            return page
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} approvals were not asked")


async def test_a_run_whose_agent_cannot_be_built_fails_instead_of_hanging(
    client: ApprovalClient, runs: RunStore
) -> None:
    def broken(_: ApprovalClient) -> Any:
        raise RuntimeError("APPROVALS_MODEL is not set")

    worker = Worker(runs, client, broken, name="w")
    task = await start(worker)
    run = await runs.submit("anything", "broken")
    await finished(runs, run.id)
    done = await runs.get(run.id)
    assert (done.status, done.error) == (RunStatus.FAILED, "RuntimeError: APPROVALS_MODEL is not set")
    await stop(worker, task)


async def test_a_run_the_worker_cannot_finish_is_taken_over_not_lost(
    client: ApprovalClient, runs: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis refusing the final write: the run is left to be taken over, never stuck 'running'."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from web.runs import worker as worker_module

    flaky = Worker(runs, client, echo_agent, visibility_timeout=0.5, name="flaky")
    real_finish = runs.finish
    calls = 0

    async def failing_finish(*args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls <= 6:  # every try of the first worker's attempt
            raise RedisConnectionError("Redis went away")
        return await real_finish(*args, **kwargs)

    monkeypatch.setattr(runs, "finish", failing_finish)
    monkeypatch.setattr(worker_module, "FINISH_RETRIES", (0.01,) * 5)
    task = await start(flaky)
    run = await runs.submit("shout this", "echo")
    await finished(runs, run.id)
    done = await runs.get(run.id)
    assert (done.status, done.result, done.attempts) == (RunStatus.FINISHED, "SHOUT THIS", 2)
    await stop(flaky, task)


async def test_run_listings_page_through_every_view(runs: RunStore) -> None:
    submitted = [await runs.submit(f"job {n}", "demo") for n in range(7)]
    for run in submitted[:3]:
        await runs.started(run.id, "w")
    newest_first = [r.id for r in submitted[::-1]]
    running, queued = newest_first[4:], newest_first[:4]
    views = (("all", newest_first), ("queued", queued), ("running", running), ("active", [*running, *queued]))
    for view, expected in views:
        seen = []
        for offset in range(0, 10, 3):
            page = await runs.list_runs(view, offset=offset, limit=3)
            assert page.total == len(expected)
            seen += [r.id for r in page.items]
        assert seen == expected, view
