"""Workers on a real Redis: runs taken from the stream, and taken over after a worker dies."""

from __future__ import annotations

import asyncio

import pytest

from approvals import ApprovalClient, ApprovalRequest, Status
from tests.conftest import until
from web.profiles import demo_agent
from web.runstore import RunStatus, RunStore
from web.worker import Worker


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
    from approvals import InvalidRequest

    for task in ("", "   ", 5, "x" * 30_000):
        with pytest.raises(InvalidRequest, match="task"):
            await runs.submit(task, "demo")
