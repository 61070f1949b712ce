"""Decision statistics count people's decisions; expiries, cancellations and withdrawals are apart."""

from __future__ import annotations

import pytest

from approvals import ApprovalClient
from approvals.stats import decision_stats, recent_stats
from tests.conftest import eventually


async def _expired(client: ApprovalClient, request_id: str) -> bool:
    return (await client.get(request_id)).status.value == "expired"


async def test_only_reviewers_decisions_count_as_decisions(any_client: ApprovalClient) -> None:
    store = any_client.store
    approved, rejected, cancelled, withdrawn, _pending = [await store.create(f"a{n}", queue="ops") for n in range(5)]
    await store.approve(approved.id, by="alice")
    await store.reject(rejected.id, by="bob", reason="no")
    await store.cancel(cancelled.id, by="carol")
    await store.withdraw(withdrawn.id, reason="the agent stopped waiting")
    short = await store.create("late", queue="ops", timeout=0.01)
    await eventually(lambda: _expired(any_client, short.id))  # by the client's sweeper

    [ops] = await decision_stats(store)
    assert (ops.queue, ops.decided, ops.expired, ops.cancelled, ops.withdrawn) == ("ops", 2, 1, 1, 1)
    assert ops.per_minute == pytest.approx(0.2)  # two decisions over the ten-minute rate window
    assert ops.by_outcome == {"approved": 1, "rejected": 1, "cancelled": 1, "withdrawn": 1, "expired": 1}

    counts = await store.counts()
    assert counts["ops", "withdrawn"] == 1 and counts["ops", "approved"] == 1
    assert await store.reviewer_counts() == {("alice", "approved"): 1, ("bob", "rejected"): 1}


async def test_reviewers_are_listed_busiest_first_with_their_own_times(any_client: ApprovalClient) -> None:
    store = any_client.store
    for n in range(3):
        request = await store.create(f"r{n}", queue="email")
        await store.approve(request.id, by="rita") if n else await store.reject(request.id, by="sam", reason="no")
    system = await store.create("gone", queue="email")
    await store.withdraw(system.id, reason="superseded")
    _, reviewers = await recent_stats(store)
    assert [(r.reviewer, r.approved, r.rejected) for r in reviewers] == [("rita", 2, 0), ("sam", 0, 1)]
    assert all(r.p50 is not None and r.p50 >= 0 for r in reviewers)
