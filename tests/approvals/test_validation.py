"""Bad input to every public function raises a clear `InvalidRequest` and writes nothing."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from approvals import ApprovalClient, ApprovalRequest, InvalidRequest, Status
from approvals.validation import MAX_ACTION, MAX_JSON_BYTES, MAX_NAME, MAX_REASON

Call = Callable[[ApprovalClient, ApprovalRequest], Awaitable[Any]]


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


BAD_CALLS: dict[str, tuple[str, Call]] = {
    "empty action": ("action", lambda c, r: c.create("")),
    "blank action": ("action", lambda c, r: c.create("   ")),
    "action not text": ("action", lambda c, r: c.create(42)),
    "action too long": ("action", lambda c, r: c.create("x" * (MAX_ACTION + 1))),
    "action with newline": ("action", lambda c, r: c.create("a\nb")),
    "args not a mapping": ("args", lambda c, r: c.create("a", ["x"])),
    "args not JSON": ("args", lambda c, r: c.create("a", {"when": object()})),
    "args with NaN": ("args", lambda c, r: c.create("a", {"n": math.nan})),
    "args with a set": ("args", lambda c, r: c.create("a", {"s": {1, 2}})),
    "args too deep": ("args", lambda c, r: c.create("a", _deep(5000))),
    "args too big": ("args", lambda c, r: c.create("a", {"blob": "x" * MAX_JSON_BYTES})),
    "args with int keys": ("args", lambda c, r: c.create("a", {1: "to-alice", "1": "to-mallory"})),
    "args with nested int keys": ("args", lambda c, r: c.create("a", {"x": [{2: "b"}]})),
    "args with lone surrogate": ("args", lambda c, r: c.create("a", {"x": "\ud800"})),
    "action with lone surrogate": ("action", lambda c, r: c.create("a\udfff")),
    "requester with spaces": ("requested_by", lambda c, r: c.store.create("a", requested_by="agent ")),
    "context not JSON": ("context", lambda c, r: c.create("a", context={"f": print})),
    "queue with space": ("queue", lambda c, r: c.create("a", queue="my queue")),
    "queue with colon": ("queue", lambda c, r: c.create("a", queue="a:b")),
    "queue too long": ("queue", lambda c, r: c.create("a", queue="q" * 65)),
    "queue empty": ("queue", lambda c, r: c.create("a", queue="")),
    "timeout zero": ("timeout", lambda c, r: c.create("a", timeout=0)),
    "timeout negative": ("timeout", lambda c, r: c.create("a", timeout=-1)),
    "timeout NaN": ("timeout", lambda c, r: c.create("a", timeout=math.nan)),
    "timeout as text": ("timeout", lambda c, r: c.create("a", timeout="10")),
    "timeout as bool": ("timeout", lambda c, r: c.create("a", timeout=True)),
    "timeout of years": ("timeout", lambda c, r: c.create("a", timeout=10 * 365 * 86400)),
    "agent id too long": ("agent_id", lambda c, r: c.create("a", agent_id="a" * (MAX_NAME + 1))),
    "run id control char": ("run_id", lambda c, r: c.create("a", run_id="r\x00")),
    "empty idempotency key": ("idempotency_key", lambda c, r: c.create("a", idempotency_key="")),
    "request_approval bad args": ("args", lambda c, r: c.request_approval("a", {"x": b"bytes"})),
    "get bad id": ("request_id", lambda c, r: c.get("../../etc")),
    "wait bad id": ("request_id", lambda c, r: c.wait("nope")),
    "wait bad timeout": ("timeout", lambda c, r: c.wait(r.id, timeout=-1)),
    "list bad queue": ("queue", lambda c, r: c.store.list_pending("bad queue")),
    "list bad offset": ("offset", lambda c, r: c.store.list_pending(offset=-1)),
    "list zero limit": ("limit", lambda c, r: c.store.list_decided(limit=0)),
    "list huge limit": ("limit", lambda c, r: c.store.list_decided(limit=10_000)),
    "audit bad cursor": ("cursor", lambda c, r: c.store.read_audit(before="yesterday")),
    "audit two cursors": ("before", lambda c, r: c.store.read_audit(before="1-0", after="1-0")),
    "approve bad id": ("request_id", lambda c, r: c.store.approve("x", by="alice")),
    "approve without reviewer": ("by", lambda c, r: c.store.approve(r.id, by="")),
    "approve edited not JSON": ("edited_args", lambda c, r: c.store.approve(r.id, by="a", edited_args={"x": object()})),
    "approve edited not mapping": ("edited_args", lambda c, r: c.store.approve(r.id, by="a", edited_args=[1])),
    "approve by padded name": ("by", lambda c, r: c.store.approve(r.id, by=" alice")),
    "reject without reason": ("reason", lambda c, r: c.store.reject(r.id, by="alice", reason="")),
    "reject reason not text": ("reason", lambda c, r: c.store.reject(r.id, by="alice", reason=3)),
    "reject reason too long": ("reason", lambda c, r: c.store.reject(r.id, by="a", reason="x" * (MAX_REASON + 1))),
    "cancel reviewer too long": ("by", lambda c, r: c.store.cancel(r.id, by="b" * (MAX_NAME + 1))),
}


async def _snapshot(client: ApprovalClient) -> dict[str, bytes]:
    async with Redis.from_url(client.settings.redis_url or "") as redis:
        keys = sorted([key async for key in redis.scan_iter(match=f"{client.settings.prefix}*")])
        return {key.decode(): await redis.dump(key) for key in keys}


@pytest.mark.parametrize("case", BAD_CALLS)
async def test_bad_input_is_refused_and_writes_nothing(client: ApprovalClient, case: str) -> None:
    field, call = BAD_CALLS[case]
    request = await client.create("existing", {"a": 1})
    before = await _snapshot(client)
    with pytest.raises(InvalidRequest) as caught:
        await call(client, request)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert await _snapshot(client) == before
    assert (await client.get(request.id)).status is Status.PENDING
