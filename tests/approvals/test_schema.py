"""Argument schemas: a request may say what its arguments look like, and edits must fit it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from approvals import ApprovalClient, InvalidRequest, Status

REFUND = {
    "type": "object",
    "properties": {
        "order": {"type": "string"},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"type": ["string", "null"], "enum": ["EUR", "USD", None]},
    },
    "required": ["order", "amount"],
    "additionalProperties": False,
}


async def test_edits_that_do_not_fit_are_refused_field_by_field_and_nothing_is_written(
    any_client: ApprovalClient,
) -> None:
    store = any_client.store
    request = await store.create("refund", {"order": "A-1", "amount": 10}, args_schema=REFUND)
    with pytest.raises(InvalidRequest) as refused:
        await store.approve(request.id, by="alice", edited_args={"amount": "lots", "currencyy": "EUR"})
    details = {d["field"]: d["message"] for d in refused.value.details}
    assert details == {
        "edited_args.amount": 'must be of type number, not string ("lots")',
        "edited_args.currencyy": "not an argument of this action; it takes amount, currency, order",
        "edited_args.order": "is required",
    }
    assert refused.value.field == "edited_args"
    stored = await store.get(request.id)
    assert (stored.status, stored.edited_args) == (Status.PENDING, None)
    assert [e.type for e in (await store.read_audit()).events] == ["created"]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"order": "A-1", "amount": -5}, "edited_args.amount"),
        ({"order": "A-1", "amount": 5, "currency": "GBP"}, "edited_args.currency"),
        ({"order": 7, "amount": 5}, "edited_args.order"),
    ],
)
async def test_the_schemas_bounds_enums_and_types_hold(
    client: ApprovalClient, edit: dict[str, Any], problem: str
) -> None:
    request = await client.store.create("refund", {"order": "A-1", "amount": 10}, args_schema=REFUND)
    with pytest.raises(InvalidRequest) as refused:
        await client.store.approve(request.id, by="alice", edited_args=edit)
    assert [d["field"] for d in refused.value.details] == [problem]


async def test_fitting_edits_are_approved_and_edits_equal_to_the_ask_are_no_edit(client: ApprovalClient) -> None:
    store = client.store
    edited = await store.create("refund", {"order": "A-1", "amount": 10}, args_schema=REFUND)
    decision = await store.approve(edited.id, by="alice", edited_args={"order": "A-1", "amount": 4, "currency": None})
    assert (decision.edited, decision.args["amount"]) == (True, 4)
    same = await store.create("refund", {"order": "A-2", "amount": 10}, args_schema=REFUND)
    decision = await store.approve(same.id, by="alice", edited_args={"amount": 10, "order": "A-2"})
    assert (decision.edited, (await store.get(same.id)).edited_args) == (False, None)


async def test_without_a_schema_any_json_object_is_a_valid_edit(client: ApprovalClient) -> None:
    request = await client.store.create("anything", {"a": 1})
    assert (await client.store.approve(request.id, by="alice", edited_args={"b": [1, 2]})).args == {"b": [1, 2]}


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "array"}, "must describe an object"),
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(a+)+$"}}}, "uses ['pattern']"),
        ({"type": "object", "properties": {"a": {"$ref": "#"}}}, "uses ['$ref']"),
        ({"type": "object", "properties": {"a": {"type": "strung"}}}, "is not a valid JSON Schema"),
        ("not a schema", "must be a JSON Schema object"),
    ],
)
async def test_unsafe_or_invalid_schemas_are_refused_at_creation(
    any_client: ApprovalClient, schema: Any, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        await any_client.store.create("x", {}, args_schema=schema)
    assert (await any_client.store.list_pending()).total == 0


async def test_arguments_that_do_not_fit_their_own_schema_are_refused_at_creation(client: ApprovalClient) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await client.store.create("refund", {"order": "A-1"}, args_schema=REFUND)
    assert [d["field"] for d in refused.value.details] == ["args.amount"]
    assert (await client.store.list_pending()).total == 0


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}}, "uses ['uniqueItems']"),
        ({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}] * 9}}}, "anyOf may hold at most 8"),
        ({"type": "object", "properties": {"a": {"enum": list(range(65))}}}, "enum may list at most 64"),
        (
            {"type": "object", "properties": {f"p{n}": {"anyOf": [{"type": "string"}] * 8} for n in range(8)}},
            "at most 64 schemas in all",
        ),
    ],
)
async def test_schemas_that_would_make_checks_slow_are_refused(
    client: ApprovalClient, schema: Any, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        await client.store.create("x", {}, args_schema=schema)


async def test_a_check_that_cannot_compute_is_a_clear_refusal(client: ApprovalClient) -> None:
    schema = {"type": "object", "properties": {"a": {"multipleOf": 0.5}}}
    with pytest.raises(InvalidRequest, match="cannot be checked"):
        await client.store.create("pay", {"a": 10**400}, args_schema=schema)
    request = await client.store.create("pay", {"a": 2}, args_schema=schema)
    with pytest.raises(InvalidRequest, match="cannot be checked"):
        await client.store.approve(request.id, by="alice", edited_args={"a": 10**400})


async def test_large_arguments_are_checked_off_the_event_loop(client: ApprovalClient) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "array", "items": {"anyOf": [{"type": "string"}] * 7 + [{"type": "integer"}]}}},
    }
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    ticking = asyncio.create_task(ticker())
    started = asyncio.get_running_loop().time()
    await client.store.create("x", {"a": list(range(9_000))}, args_schema=schema)
    took = asyncio.get_running_loop().time() - started
    ticking.cancel()
    assert ticks >= took / 0.005 / 4  # the loop kept turning while the check ran


async def test_arguments_are_checked_as_json_and_json_equality_decides_what_is_an_edit(client: ApprovalClient) -> None:
    schema = {"type": "object", "properties": {"ids": {"type": "array"}, "n": {}}}
    request = await client.store.create("x", {"ids": (1, 2), "n": True}, args_schema=schema)  # a tuple is an array
    decision = await client.store.approve(request.id, by="alice", edited_args={"ids": [1, 2], "n": 1})
    assert decision.edited and decision.args["n"] == 1  # true -> 1 is an edit, though True == 1 in Python
