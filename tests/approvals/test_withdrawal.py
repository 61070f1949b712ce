"""Nobody approves what nobody waits for: a request whose asker stopped waiting is withdrawn at once,
unless another attempt will take it up again; asking again reattaches to what is still open."""

from __future__ import annotations

import asyncio

import pytest

from approvals import AlreadyDecided, ApprovalClient, IdempotencyConflict, Status
from approvals.asking import RunHolder, current_holder
from tests.conftest import ClientFactory, eventually


async def first_pending(client: ApprovalClient) -> str:
    for _ in range(500):
        if (page := await client.store.list_pending()).items:
            return page.items[0].id
        await asyncio.sleep(0.01)
    raise AssertionError("nothing was asked")


async def test_a_cancelled_asker_withdraws_its_request_and_reviewers_cannot_approve_it(client: ApprovalClient) -> None:
    asking = asyncio.create_task(client.request_approval("deploy", {"v": 2}, idempotency_key="k-1"))
    request_id = await first_pending(client)
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    withdrawn = await client.get(request_id)  # withdrawn by the time the cancelled call returned
    assert (withdrawn.status, withdrawn.decided_by) == (Status.WITHDRAWN, "system:agent")
    assert withdrawn.reason == "the agent stopped waiting: the code that asked was cancelled"
    with pytest.raises(AlreadyDecided) as refused:
        await client.store.approve(request_id, by="alice")
    assert refused.value.decision.status is Status.WITHDRAWN
    assert (await client.store.list_pending()).total == 0


async def test_asking_again_after_a_withdrawal_opens_a_new_request(client: ApprovalClient) -> None:
    asking = asyncio.create_task(client.request_approval("deploy", {"v": 2}, idempotency_key="k-2"))
    first = await first_pending(client)
    asking.cancel()
    await asyncio.gather(asking, return_exceptions=True)

    again = asyncio.create_task(client.request_approval("deploy", {"v": 2}, idempotency_key="k-2"))
    second = await first_pending(client)
    assert second != first
    await client.store.approve(second, by="alice")
    assert (await asyncio.wait_for(again, 5)).approved


async def test_a_stop_another_attempt_takes_up_keeps_the_request_open_to_reattach(client: ApprovalClient) -> None:
    holder = RunHolder()

    async def ask() -> object:
        current_holder.set(holder)
        return await client.request_approval("deploy", {"v": 2}, idempotency_key="run-9:1:0")

    asking = asyncio.create_task(ask())
    request_id = await first_pending(client)
    holder.keep_pending = True  # what a worker handing its run back says
    asking.cancel()
    await asyncio.gather(asking, return_exceptions=True)
    assert (await client.get(request_id)).pending

    again = asyncio.create_task(client.request_approval("deploy", {"v": 2}, idempotency_key="run-9:1:0"))
    await asyncio.sleep(0.05)
    await client.store.approve(request_id, by="alice")
    assert (await asyncio.wait_for(again, 5)).request_id == request_id  # attached: asked once


async def test_closing_the_client_withdraws_what_its_waiters_asked(make_client: ClientFactory) -> None:
    agent = await make_client(requested_by="agent-1")
    reviewer = await make_client()
    asking = asyncio.create_task(agent.request_approval("deploy", {"v": 2}))
    request_id = await first_pending(reviewer)
    await agent.aclose()
    assert isinstance((await asyncio.gather(asking, return_exceptions=True))[0], Exception)
    closed = await reviewer.get(request_id)
    assert (closed.status, closed.reason) == (
        Status.WITHDRAWN, "the agent's process stopped waiting (its approval client closed)",
    )  # fmt: skip


async def test_a_decision_racing_the_withdrawal_stands(client: ApprovalClient) -> None:
    asking = asyncio.create_task(client.request_approval("deploy", {"v": 2}))
    request_id = await first_pending(client)
    await client.store.approve(request_id, by="alice")
    asking.cancel()  # too late: the decision is in
    await asyncio.gather(asking, return_exceptions=True)
    assert (await client.get(request_id)).status is Status.APPROVED


async def test_supersede_moves_a_key_to_the_new_arguments_and_withdraws_the_old_request(
    client: ApprovalClient,
) -> None:
    old = await client.create("refund", {"amount": 10}, idempotency_key="run-3:2:0")
    with pytest.raises(IdempotencyConflict):
        await client.create("refund", {"amount": 12}, idempotency_key="run-3:2:0")
    new = await client.create("refund", {"amount": 12}, idempotency_key="run-3:2:0", supersede=True)
    assert new.id != old.id and new.pending
    replaced = await client.get(old.id)
    assert replaced.status is Status.WITHDRAWN and replaced.reason is not None and "superseded" in replaced.reason
    assert (await client.create("refund", {"amount": 12}, idempotency_key="run-3:2:0")).id == new.id


async def test_supersede_also_replaces_a_decided_request_for_other_arguments(client: ApprovalClient) -> None:
    old = await client.create("refund", {"amount": 10}, idempotency_key="run-4:2:0")
    await client.store.approve(old.id, by="alice")
    new = await client.create("refund", {"amount": 99}, idempotency_key="run-4:2:0", supersede=True)
    assert new.pending and (await client.get(old.id)).status is Status.APPROVED  # that decision stays on record


async def test_many_concurrent_re_asks_after_a_withdrawal_share_one_new_request(client: ApprovalClient) -> None:
    first = await client.create("deploy", {"v": 1}, idempotency_key="k-race")
    await client.store.withdraw(first.id, reason="the test gave up")
    again = await asyncio.gather(*(client.create("deploy", {"v": 1}, idempotency_key="k-race") for _ in range(20)))
    assert len({request.id for request in again}) == 1
    await eventually(lambda: _pending_total(client, 1))


async def _pending_total(client: ApprovalClient, total: int) -> bool:
    return (await client.store.list_pending()).total == total


async def test_a_cancel_while_the_request_is_being_written_still_withdraws_it(client: ApprovalClient) -> None:
    store = client.store
    written = asyncio.Event()
    create_script = store._create

    async def reply_arrives_late(call: object) -> object:  # the script ran in Redis; its reply is on the way
        reply = await create_script(call)  # type: ignore[arg-type]
        written.set()
        await asyncio.sleep(1)
        return reply

    store._create = reply_arrives_late  # type: ignore[method-assign]
    asking = asyncio.create_task(client.request_approval("deploy", {"v": 1}))
    await written.wait()
    asking.cancel()
    await asyncio.gather(asking, return_exceptions=True)
    store._create = create_script  # type: ignore[method-assign]
    assert (await store.list_pending()).total == 0
    [ended] = (await store.list_decided()).items
    assert ended.status is Status.WITHDRAWN


async def test_a_withdrawal_survives_repeated_cancellation_and_the_client_closes_after_it(
    make_client: ClientFactory,
) -> None:
    from approvals.tasks import BackgroundTasks

    agent = await make_client(requested_by="agent-x")
    observer = await make_client()
    withdraw = agent.store.withdraw

    async def slow_withdraw(*args: object, **kwargs: object) -> object:  # Redis is slow to answer for a while
        await asyncio.sleep(0.3)
        return await withdraw(*args, **kwargs)  # type: ignore[arg-type]

    agent.store.withdraw = slow_withdraw  # type: ignore[method-assign]
    tasks = BackgroundTasks()
    tasks.spawn(agent.request_approval("deploy", {"v": 1}))
    request_id = await first_pending(observer)
    await tasks.aclose()  # cancels again and again, as a worker's or the demo's shutdown does
    await agent.aclose()
    assert (await observer.get(request_id)).status is Status.WITHDRAWN


async def test_a_superseded_attempts_failed_wait_leaves_the_request_to_the_current_attempt(
    client: ApprovalClient,
) -> None:
    holds = True

    async def still_holds() -> bool:
        return holds

    async def stale_attempt() -> object:
        current_holder.set(RunHolder(still_holds=still_holds))
        return await client.request_approval("deploy", {"v": 1}, idempotency_key="run-5:1:0")

    asking = asyncio.create_task(stale_attempt())
    request_id = await first_pending(client)
    holds = False  # another worker took the run over and attached to the same request
    asking.cancel()  # the stale attempt's wait ends (here: cancelled; likewise on an error of its own)
    await asyncio.gather(asking, return_exceptions=True)
    assert (await client.get(request_id)).pending


async def test_asking_again_with_other_arguments_after_a_withdrawal_is_a_new_request(client: ApprovalClient) -> None:
    old = await client.create("refund", {"amount": 10}, idempotency_key="k-moved")
    await client.store.withdraw(old.id, reason="the agent stopped waiting")
    new = await client.create("refund", {"amount": 12}, idempotency_key="k-moved")  # nobody waits for the old
    assert new.id != old.id and new.pending
