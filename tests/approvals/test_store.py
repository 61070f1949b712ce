"""The store on real Redis and on the embedded store: create, read, list, decide once, audit."""

from __future__ import annotations

import asyncio
import time

import pytest

from approvals import (
    AlreadyDecided,
    ApprovalClient,
    IdempotencyConflict,
    RequestNotFound,
    SelfDecisionForbidden,
    Status,
)


async def test_create_then_get_round_trips_every_field(any_client: ApprovalClient) -> None:
    store = any_client.store
    created = await store.create(
        "send_email",
        {"to": "bob@example.com", "n": [1, 2.5, None, True], "big": 2**63 + 1},
        queue="email",
        timeout=120,
        agent_id="mailer",
        run_id="run-7",
        requested_by="agent-1",
        idempotency_key="k-1",
        context={"task": "tell bob", "step": 3},
    )
    fetched = await store.get(created.id)
    assert fetched == created
    assert fetched.status is Status.PENDING
    assert fetched.args["big"] == 2**63 + 1
    assert fetched.expires_at - fetched.created_at == pytest.approx(120)
    assert fetched.context == {"task": "tell bob", "step": 3}
    assert fetched.decision() is None


async def test_defaults_come_from_settings(any_client: ApprovalClient) -> None:
    request = await any_client.store.create("deploy")
    assert request.queue == any_client.settings.default_queue
    assert request.args == {}
    assert request.expires_at - request.created_at == pytest.approx(any_client.settings.default_timeout)


async def test_get_unknown_id_raises_not_found(any_client: ApprovalClient) -> None:
    with pytest.raises(RequestNotFound):
        await any_client.store.get("0" * 32)


async def test_idempotency_key_returns_the_same_request_decided_or_not(any_client: ApprovalClient) -> None:
    store = any_client.store
    first = await store.create("pay", {"amount": 10}, idempotency_key="invoice-1")
    again = await store.create("pay", {"amount": 10}, idempotency_key="invoice-1")
    assert again.id == first.id
    await store.approve(first.id, by="alice")
    after = await store.create("pay", {"amount": 10}, idempotency_key="invoice-1")
    assert after.id == first.id
    assert after.status is Status.APPROVED
    assert (await store.list_pending()).total == 0


async def test_idempotency_key_reused_for_other_arguments_is_refused(any_client: ApprovalClient) -> None:
    store = any_client.store
    first = await store.create("pay", {"amount": 10}, idempotency_key="invoice-2")
    with pytest.raises(IdempotencyConflict) as caught:
        await store.create("pay", {"amount": 9999}, idempotency_key="invoice-2")
    assert caught.value.request_id == first.id
    assert (await store.list_pending()).total == 1


async def test_list_pending_is_oldest_first_paginated_with_total(any_client: ApprovalClient) -> None:
    store = any_client.store
    ids = [(await store.create(f"step {i}", queue="ops" if i % 2 else "email")).id for i in range(7)]
    first = await store.list_pending(offset=0, limit=3)
    second = await store.list_pending(offset=3, limit=3)
    last = await store.list_pending(offset=6, limit=3)
    assert [r.id for r in first.items + second.items + last.items] == ids
    assert (first.total, first.has_more, last.has_more) == (7, True, False)
    ops = await store.list_pending("ops")
    assert [r.id for r in ops.items] == ids[1::2]
    assert ops.total == 3


async def test_list_decided_is_newest_decision_first(any_client: ApprovalClient) -> None:
    store = any_client.store
    ids = [(await store.create("x", queue="q1")).id for _ in range(3)]
    for request_id in reversed(ids):
        await store.approve(request_id, by="alice")
    decided = await store.list_decided()
    assert [r.id for r in decided.items] == ids
    assert decided.total == 3
    assert (await store.list_decided("q1", limit=1)).items[0].id == ids[0]
    assert (await store.list_pending()).total == 0


async def test_queue_stats_report_depth_and_oldest_age(any_client: ApprovalClient) -> None:
    store = any_client.store
    first = await store.create("a", queue="email")
    await store.create("b", queue="email")
    done = await store.create("c", queue="deploy")
    await store.reject(done.id, by="alice", reason="not today")
    stats = {s.queue: s for s in await store.queue_stats()}
    assert stats["email"].depth == 2
    assert stats["email"].oldest_created_at == pytest.approx(first.created_at)
    assert 0 <= stats["email"].oldest_age < 5
    assert (stats["deploy"].depth, stats["deploy"].oldest_created_at) == (0, None)


async def test_approve_reject_and_edit_record_the_decision(any_client: ApprovalClient) -> None:
    store = any_client.store
    a, r, e = [await store.create("act", {"path": "/tmp/x"}, requested_by="agent-1") for _ in range(3)]
    approved = await store.approve(a.id, by="alice", reason="fine")
    rejected = await store.reject(r.id, by="bob", reason="too risky")
    edited = await store.approve(e.id, by="carol", edited_args={"path": "/tmp/y"})
    assert (approved.status, approved.decided_by, approved.reason, approved.args) == (
        Status.APPROVED, "alice", "fine", {"path": "/tmp/x"},
    )  # fmt: skip
    assert (rejected.status, rejected.reason, rejected.approved) == (Status.REJECTED, "too risky", False)
    assert (edited.args, edited.edited) == ({"path": "/tmp/y"}, True)
    stored = await store.get(e.id)
    assert stored.args == {"path": "/tmp/x"}  # what was asked stays on record
    assert stored.edited_args == {"path": "/tmp/y"}
    assert stored.decision() == edited
    assert time.time() - edited.decided_at < 5


async def test_second_decider_gets_already_decided_with_the_winner(any_client: ApprovalClient) -> None:
    store = any_client.store
    request = await store.create("deploy")
    winner = await store.reject(request.id, by="alice", reason="no")
    with pytest.raises(AlreadyDecided) as caught:
        await store.approve(request.id, by="bob")
    assert caught.value.decision == winner
    assert (await store.get(request.id)).status is Status.REJECTED


async def test_fifty_concurrent_deciders_exactly_one_wins(client: ApprovalClient) -> None:
    store = client.store
    request = await store.create("drop table", {"table": "users"})
    outcomes = await asyncio.gather(
        *(
            store.approve(request.id, by=f"reviewer-{i}")
            if i % 2
            else store.reject(request.id, by=f"reviewer-{i}", reason=f"no {i}")
            for i in range(50)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, AlreadyDecided)]
    assert len(winners) == 1
    assert len(losers) == 49
    assert all(loser.decision == winners[0] for loser in losers)
    stored = await store.get(request.id)
    assert stored.decided_by == winners[0].decided_by
    events = (await store.read_audit()).events
    assert [e.type for e in events].count(winners[0].status.value) == 1


async def test_requester_cannot_decide_own_request(any_client: ApprovalClient) -> None:
    store = any_client.store
    request = await store.create("deploy", requested_by="mallory")
    with pytest.raises(SelfDecisionForbidden):
        await store.approve(request.id, by="mallory")
    with pytest.raises(SelfDecisionForbidden):
        await store.reject(request.id, by="mallory", reason="x")
    assert (await store.get(request.id)).pending
    cancelled = await store.cancel(request.id, by="mallory", reason="not needed")
    assert cancelled.status is Status.CANCELLED


async def test_cancel_leaves_the_queues_and_cannot_be_approved_after(any_client: ApprovalClient) -> None:
    store = any_client.store
    request = await store.create("deploy", queue="ops")
    await store.cancel(request.id, by="agent-1")
    assert (await store.list_pending("ops")).total == 0
    with pytest.raises(AlreadyDecided) as caught:
        await store.approve(request.id, by="alice")
    assert caught.value.decision.status is Status.CANCELLED


async def test_deciding_unknown_request_raises_not_found(any_client: ApprovalClient) -> None:
    with pytest.raises(RequestNotFound):
        await any_client.store.approve("f" * 32, by="alice")


async def test_audit_records_who_what_when_and_both_args(any_client: ApprovalClient) -> None:
    store = any_client.store
    request = await store.create("rm", {"path": "/a"}, queue="fs", requested_by="agent-1")
    await store.approve(request.id, by="alice", edited_args={"path": "/b"}, reason="narrowed")
    created, decided = reversed((await store.read_audit()).events)
    assert (created.type, created.actor, created.queue, created.args) == ("created", "agent-1", "fs", {"path": "/a"})
    assert (decided.type, decided.actor, decided.reason) == ("approved", "alice", "narrowed")
    assert (decided.args, decided.edited_args) == ({"path": "/a"}, {"path": "/b"})
    assert decided.request_id == created.request_id == request.id
    assert decided.at >= created.at


async def test_audit_reads_page_by_page_both_directions(any_client: ApprovalClient) -> None:
    store = any_client.store
    ids = [(await store.create(f"a{i}")).id for i in range(5)]
    newest_first: list[str] = []
    cursor = None
    while True:
        page = await store.read_audit(before=cursor, limit=2)
        newest_first += [e.request_id for e in page.events]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert newest_first == ids[::-1]
    first = await store.read_audit(after="0", limit=3)
    rest = await store.read_audit(after=first.next_cursor, limit=3)
    assert [e.request_id for e in first.events + rest.events] == ids
    assert rest.next_cursor is None


async def test_decided_request_is_kept_for_retention_only(client: ApprovalClient) -> None:
    store = client.store
    request = await store.create("x", idempotency_key="retained")
    await store.approve(request.id, by="alice")
    ttl = await store.redis.ttl(store.keys.request(request.id))
    assert 0 < ttl <= client.settings.retention
    key = store.keys.idempotency("by:", "retained")  # the scope of requests made with no requester
    assert 0 < await store.redis.ttl(key) <= client.settings.retention


async def test_a_runs_index_of_requests_expires_too(any_client: ApprovalClient) -> None:
    """Runs that no worker finishes (agents elsewhere, API clients naming a run) leave nothing behind."""
    store = any_client.store
    first = await store.create("x", run_id="run-1", timeout=60)
    index = store.keys.run_requests("run-1")
    assert await store.redis.zrange(index, 0, -1) == [first.id]
    limit = 60 + any_client.settings.retention
    assert limit - 5 < await store.redis.ttl(index) <= limit
    await store.redis.expire(index, 10)
    await store.create("y", run_id="run-1", timeout=60)  # a later request lengthens it again, never shortens
    assert limit - 5 < await store.redis.ttl(index) <= limit


async def test_counts_track_created_and_decided_per_queue(any_client: ApprovalClient) -> None:
    store = any_client.store
    first = await store.create("a", queue="email")
    await store.create("b", queue="email")
    await store.reject(first.id, by="alice", reason="no")
    assert await store.counts() == {("email", "created"): 2, ("email", "rejected"): 1}
