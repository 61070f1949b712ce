"""Expiry is a decision: overdue requests are decided `expired`, and an expired wait is a denial."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from approvals import AlreadyDecided, ApprovalClient, ExpirySweeper, Settings, Status
from approvals.store import EXPIRY_ACTOR
from tests.conftest import ClientFactory


@pytest.fixture
async def quiet_client(make_client: ClientFactory, any_settings: Settings) -> ApprovalClient:
    """A client without its own background sweeper, so a test can sweep by hand."""
    return await make_client(any_settings, sweep_expired=False)


async def test_waiting_caller_gets_a_denial_when_the_request_expires(any_client: ApprovalClient) -> None:
    started = time.monotonic()
    decision = await any_client.request_approval("deploy", {"v": 1}, timeout=0.3)
    assert decision.status is Status.EXPIRED
    assert not decision.approved
    assert decision.decided_by == EXPIRY_ACTOR
    assert decision.reason
    assert 0.25 < time.monotonic() - started < 3


async def test_waiter_expires_its_request_even_with_no_sweeper(make_client: ClientFactory, settings: Settings) -> None:
    client = await make_client(replace(settings, expiry_sweep_interval=3600), sweep_expired=False)
    request = await client.create("deploy", timeout=0.2)
    decision = await asyncio.wait_for(client.wait(request.id), 5)
    assert decision.status is Status.EXPIRED
    assert (await client.get(request.id)).status is Status.EXPIRED


async def test_sweeper_expires_requests_nobody_waits_for(quiet_client: ApprovalClient) -> None:
    store = quiet_client.store
    overdue = [await store.create("old", queue="ops", timeout=0.05) for _ in range(3)]
    fresh = await store.create("new", queue="ops", timeout=60)
    await asyncio.sleep(0.1)
    expired = await ExpirySweeper(store).sweep()
    assert {d.request_id for d in expired} >= {r.id for r in overdue}
    pending = await store.list_pending("ops")
    assert [r.id for r in pending.items] == [fresh.id]
    types = [e.type for e in (await store.read_audit()).events]
    assert types.count("expired") == 3


async def test_background_sweeper_runs_in_the_client(any_client: ApprovalClient) -> None:
    request = await any_client.store.create("old", timeout=0.05)
    deadline = time.monotonic() + 5
    while (await any_client.get(request.id)).pending:
        assert time.monotonic() < deadline, "the client's sweeper did not expire the request"
        await asyncio.sleep(0.02)
    assert (await any_client.get(request.id)).status is Status.EXPIRED


async def test_late_approval_of_an_overdue_request_finds_it_expired(quiet_client: ApprovalClient) -> None:
    request = await quiet_client.store.create("deploy", timeout=0.05)
    await asyncio.sleep(0.1)
    with pytest.raises(AlreadyDecided) as caught:
        await quiet_client.store.approve(request.id, by="alice")
    assert caught.value.decision.status is Status.EXPIRED
    assert (await quiet_client.get(request.id)).status is Status.EXPIRED


async def test_expire_before_the_deadline_does_nothing(quiet_client: ApprovalClient) -> None:
    request = await quiet_client.store.create("deploy", timeout=60)
    assert await quiet_client.store.expire(request.id) is None
    assert (await quiet_client.get(request.id)).pending


async def test_a_decided_request_never_expires(quiet_client: ApprovalClient) -> None:
    request = await quiet_client.store.create("deploy", timeout=0.05)
    approved = await quiet_client.store.approve(request.id, by="alice")
    await asyncio.sleep(0.1)
    assert await ExpirySweeper(quiet_client.store).sweep() == []
    assert (await quiet_client.get(request.id)).decision() == approved
