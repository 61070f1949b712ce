"""The record stays true on every page: edits are never dropped and must fit the action; people's
decisions are shown and counted apart from expiries, cancellations and withdrawals."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

from approvals import ApprovalRequest, Status
from tests.web.conftest import Site
from tests.web.metrics_text import value
from tests.web.test_cli import run

REFUND_SCHEMA = {
    "type": "object",
    "properties": {"order": {"type": "string"}, "amount": {"type": "number"}, "currency": {"type": "string"}},
    "required": ["order", "amount", "currency"],
    "additionalProperties": False,
}
ASKED = {"order": "A-1042", "amount": 129.5, "currency": "EUR"}


async def refund_request(site: Site) -> ApprovalRequest:
    return await site.store.create("refund", ASKED, queue="email", args_schema=REFUND_SCHEMA, requested_by="agents")


async def test_a_plain_approve_with_edited_arguments_asks_instead_of_dropping_them(site: Site) -> None:
    request = await refund_request(site)
    csrf = await site.login("rita")
    url = f"/requests/{request.id}/decide"
    edits = json.dumps(ASKED | {"amount": 100})
    asked = await site.client.post(url, data={"csrf_token": csrf, "outcome": "approve", "edited_args": edits})
    page = await asked.text()
    assert asked.status == 200 and "You changed the arguments." in page
    assert 'value="approve_as_asked"' in page and "&#34;amount&#34;: 100" in page  # the edits are kept on the page
    assert (await site.store.get(request.id)).pending

    done = await site.client.post(url, data={"csrf_token": csrf, "outcome": "edit", "edited_args": edits})
    assert done.status == 200
    stored = await site.store.get(request.id)
    assert (stored.status, stored.edited_args) == (Status.APPROVED, ASKED | {"amount": 100})


async def test_approve_as_asked_discards_edits_and_unchanged_text_is_no_edit(site: Site) -> None:
    first, second = await refund_request(site), await refund_request(site)
    csrf = await site.login("rita")
    data = {"csrf_token": csrf, "outcome": "approve_as_asked", "edited_args": json.dumps(ASKED | {"amount": 1})}
    await site.client.post(f"/requests/{first.id}/decide", data=data)
    assert (await site.store.get(first.id)).edited_args is None
    reordered = json.dumps(dict(reversed(list(ASKED.items()))), indent=4)  # other order and spacing: same arguments
    data = {"csrf_token": csrf, "outcome": "approve", "edited_args": reordered}
    response = await site.client.post(f"/requests/{second.id}/decide", data=data, allow_redirects=False)
    assert response.status == 303
    stored = await site.store.get(second.id)
    assert (stored.status, stored.edited_args) == (Status.APPROVED, None)


async def test_edits_that_do_not_fit_the_action_are_refused_everywhere_and_nothing_is_written(site: Site) -> None:
    request = await refund_request(site)
    bad = {"order": "A-1042", "amount": "lots", "currencyy": "EUR"}
    csrf = await site.login("rita")
    form = await site.client.post(
        f"/requests/{request.id}/decide", data={"csrf_token": csrf, "outcome": "edit", "edited_args": json.dumps(bad)}
    )
    text = await form.text()
    assert form.url.path == f"/requests/{request.id}"  # redirected to the page, the error by the field
    assert "amount: must be of type number, not string" in text and "currencyy: not an argument" in text

    api = await site.client.post(
        f"/api/v1/approvals/{request.id}/decision",
        json={"outcome": "approve", "edited_args": bad},
        headers=site.bearer("root"),
    )
    body = (await api.json())["error"]
    assert api.status == 400 and body["field"] == "edited_args"
    assert {e["field"] for e in body["errors"]} == {
        "edited_args.amount",
        "edited_args.currencyy",
        "edited_args.currency",
    }
    stored = await site.store.get(request.id)
    assert (stored.status, stored.edited_args) == (Status.PENDING, None)


async def test_the_api_takes_a_schema_and_refuses_a_bad_one_with_its_field(site: Site) -> None:
    made = await site.client.post(
        "/api/v1/approvals",
        json={"action": "refund", "args": ASKED, "args_schema": REFUND_SCHEMA},
        headers=site.bearer("bot"),
    )
    assert made.status == 201 and (await made.json())["args_schema"] == REFUND_SCHEMA
    bad = await site.client.post(
        "/api/v1/approvals",
        json={"action": "refund", "args": {}, "args_schema": {"type": "object", "properties": {"a": {"pattern": "x"}}}},
        headers=site.bearer("bot"),
    )
    assert bad.status == 400 and (await bad.json())["error"]["field"] == "args_schema"


async def test_a_withdrawn_request_says_why_and_cannot_be_approved(site: Site) -> None:
    request = await refund_request(site)
    await site.store.withdraw(request.id, reason="the agent stopped waiting: the code that asked was cancelled")
    csrf = await site.login("rita")
    page = await (await site.client.get(f"/requests/{request.id}")).text()
    assert "Withdrawn" in page and "The agent stopped waiting for this request" in page
    assert 'id="decide-form"' not in page
    late = await site.client.post(f"/requests/{request.id}/decide", data={"csrf_token": csrf, "outcome": "approve"})
    assert late.status == 409
    assert "Withdrawn at" in await late.text() and "cannot be decided" in await late.text()
    api = await site.client.post(
        f"/api/v1/approvals/{request.id}/decision", json={"outcome": "approve"}, headers=site.bearer("root")
    )
    assert api.status == 409 and "withdrawn" in (await api.json())["error"]["message"]


async def ended_every_way(site: Site) -> dict[str, ApprovalRequest]:
    made = {name: await site.store.create(f"act-{name}", queue="email") for name in ("a", "r", "c", "w")}
    await site.store.approve(made["a"].id, by="rita")
    await site.store.reject(made["r"].id, by="root", reason="no")
    await site.store.cancel(made["c"].id, by="root")
    await site.store.withdraw(made["w"].id, reason="the run ended (failed) without waiting for it")
    return made


async def test_history_shows_peoples_decisions_unless_asked_for_the_rest(site: Site) -> None:
    await ended_every_way(site)
    await site.login("vic")
    default = await (await site.client.get("/history")).text()
    assert "act-a" in default and "act-r" in default
    assert "act-c" not in default and "act-w" not in default
    everything = await (await site.client.get("/history?outcome=all")).text()
    assert all(f"act-{n}" in everything for n in "arcw")
    assert "the run ended (failed)" in everything  # why it was withdrawn, in the row
    withdrawn = await (await site.client.get("/history?outcome=withdrawn")).text()
    assert "act-w" in withdrawn and "act-a" not in withdrawn
    assert (await site.client.get("/history?outcome=bogus")).status == 400


async def test_ops_and_metrics_count_peoples_decisions_apart(site: Site) -> None:
    await ended_every_way(site)
    await site.login("vic")
    ops = await (await site.client.get("/ops")).text()
    row = re.search(r'<span class="tag">email</span>.*?</tr>', ops, re.S)
    assert row is not None
    cells = re.findall(r"<td>([^<]*)</td>", row.group(0))  # depth, oldest, per minute, p50, p95, then the rest
    assert (cells[0], cells[2]) == ("0", "0.2")  # two reviewers' decisions over ten minutes, not four
    assert cells[-3:] == ["0", "1", "1"]  # expired, cancelled, withdrawn
    assert "<td>rita</td><td>1</td><td>0</td>" in ops and "<td>root</td><td>0</td><td>1</td>" in ops

    metrics = await (await site.client.get("/metrics", headers=site.bearer("vic"))).text()
    assert value(metrics, "approvals_decisions_total", queue="email", outcome="approved") == 1
    assert value(metrics, "approvals_decisions_total", queue="email", outcome="cancelled") is None
    assert value(metrics, "approvals_withdrawn_total", queue="email") == 1
    assert value(metrics, "approvals_cancelled_total", queue="email") == 1
    assert value(metrics, "approvals_reviewer_decisions_total", reviewer="root", outcome="rejected") == 1

    queues = await (await site.client.get("/api/v1/queues", headers=site.bearer("vic"))).json()
    [email] = [q for q in queues["queues"] if q["queue"] == "email"]
    assert (email["decisions_per_minute"], email["withdrawn_last_hour"], email["cancelled_last_hour"]) == (0.2, 1, 1)


async def test_the_cli_approves_with_edits_only_when_they_fit(site: Site) -> None:
    request = await refund_request(site)

    def approve(*extra: str) -> subprocess.CompletedProcess[str]:
        return run(site.store.settings, "approve", request.id, "--as", "rita", *extra)

    refused = await asyncio.to_thread(approve, "--edited-args", '{"order": "A-1042", "amount": "lots"}')
    assert refused.returncode == 1
    assert "amount: must be of type number" in refused.stderr and "currency: is required" in refused.stderr
    assert (await site.store.get(request.id)).pending
    done = await asyncio.to_thread(approve, "--edited-args", json.dumps(ASKED | {"amount": 5}))
    assert (done.returncode, done.stdout.strip()) == (0, "approved with edits by rita")


async def test_a_schema_check_that_cannot_compute_is_a_400_not_a_500(site: Site) -> None:
    body = (
        '{"action":"pay","args":{"a":1'
        + "0" * 400
        + '},"args_schema":{"type":"object","properties":{"a":{"multipleOf":0.5}}}}'
    )
    made = await site.client.post(
        "/api/v1/approvals", data=body, headers=site.bearer("bot") | {"Content-Type": "application/json"}
    )
    assert made.status == 400 and (await made.json())["error"]["field"] == "args"
    assert (await site.store.list_pending()).total == 0
