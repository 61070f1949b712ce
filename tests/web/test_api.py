"""The JSON API: create, list, get, decide (409 on a second decision), long-poll wait, cancel, stats."""

from __future__ import annotations

import asyncio
import time

from tests.web.conftest import Site
from tests.web.metrics_text import samples, value


async def create(site: Site, who: str = "bot", **body: object) -> dict:
    response = await site.client.post("/api/v1/approvals", json={"action": "deploy", **body}, headers=site.bearer(who))
    assert response.status == 201, await response.text()
    return await response.json()


async def test_create_get_and_list(site: Site) -> None:
    created = await create(site, args={"version": "1.2"}, queue="ops", context={"task": "ship"}, agent_id="shipper")
    assert (created["status"], created["requested_by"], created["queue"]) == ("pending", "bot", "ops")
    got = await (await site.client.get(f"/api/v1/approvals/{created['id']}", headers=site.bearer("vic"))).json()
    assert got == created
    listing = await (await site.client.get("/api/v1/approvals?queue=ops&limit=10", headers=site.bearer("vic"))).json()
    assert (listing["total"], [r["id"] for r in listing["items"]]) == (1, [created["id"]])


async def test_idempotency_key_returns_the_same_request(site: Site) -> None:
    first = await create(site, idempotency_key="run-1:1:0")
    again = await create(site, idempotency_key="run-1:1:0")
    assert again["id"] == first["id"]
    response = await site.client.post(
        "/api/v1/approvals", json={"action": "other", "idempotency_key": "run-1:1:0"}, headers=site.bearer("bot")
    )
    assert response.status == 409


async def test_bad_input_is_a_clear_4xx_and_writes_nothing(site: Site) -> None:
    headers = {**site.bearer("bot"), "Content-Type": "application/json"}
    cases = [
        (b"{not json", 400, "valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"args": {}}', 400, "action is required"),
        (b'{"action": "x", "colour": "red"}', 400, "Unknown field"),
        (b'{"action": "x", "args": [1]}', 400, "args"),
        (b'{"action": "x", "queue": "bad queue"}', 400, "queue"),
        (b'{"action": "x", "timeout": -5}', 400, "timeout"),
        (b'{"action": "' + b"x" * 300_000 + b'"}', 413, "body size"),
    ]
    for body, status, message in cases:
        response = await site.client.post("/api/v1/approvals", data=body, headers=headers)
        assert response.status == status, body[:40]
        error = (await response.json())["error"]
        assert message in error["message"], error
    assert (await site.store.list_pending()).total == 0


async def test_decide_and_a_second_decision_gets_409_with_the_winner(site: Site) -> None:
    request = await create(site, queue="email")
    url = f"/api/v1/approvals/{request['id']}/decision"
    first = await site.client.post(
        url, json={"outcome": "approve", "edited_args": {"v": 2}}, headers=site.bearer("rita")
    )
    assert first.status == 200
    decision = await first.json()
    assert (decision["status"], decision["decided_by"], decision["args"], decision["edited"]) == (
        "approved",
        "rita",
        {"v": 2},
        True,
    )
    second = await site.client.post(url, json={"outcome": "reject", "reason": "no"}, headers=site.bearer("root"))
    assert second.status == 409
    assert (await second.json())["error"]["decision"]["decided_by"] == "rita"


async def test_who_may_decide(site: Site) -> None:
    ops = await create(site, queue="ops")
    email = await create(site, who="rita", queue="email")
    decide = {"outcome": "approve"}
    assert (
        await site.client.post(f"/api/v1/approvals/{ops['id']}/decision", json=decide, headers=site.bearer("vic"))
    ).status == 403
    assert (
        await site.client.post(f"/api/v1/approvals/{ops['id']}/decision", json=decide, headers=site.bearer("rita"))
    ).status == 403
    own = await site.client.post(f"/api/v1/approvals/{email['id']}/decision", json=decide, headers=site.bearer("rita"))
    assert own.status == 403
    assert "cannot decide it" in (await own.json())["error"]["message"]
    assert (
        await site.client.post(f"/api/v1/approvals/{ops['id']}/decision", json=decide, headers=site.bearer("root"))
    ).status == 200
    bad = await site.client.post(
        f"/api/v1/approvals/{email['id']}/decision", json={"outcome": "maybe"}, headers=site.bearer("root")
    )
    assert bad.status == 400
    no_reason = await site.client.post(
        f"/api/v1/approvals/{email['id']}/decision", json={"outcome": "reject"}, headers=site.bearer("root")
    )
    assert no_reason.status == 400
    assert (await site.store.get(email["id"])).pending


async def test_long_poll_wait_returns_on_decision(site: Site) -> None:
    request = await create(site)

    async def decide_soon() -> None:
        await asyncio.sleep(0.2)
        await site.store.approve(request["id"], by="root")

    deciding = asyncio.create_task(decide_soon())
    started = time.monotonic()
    response = await site.client.get(f"/api/v1/approvals/{request['id']}/wait?timeout=5", headers=site.bearer("bot"))
    await deciding
    assert response.status == 200
    assert (await response.json())["status"] == "approved"
    assert 0.15 < time.monotonic() - started < 2


async def test_long_poll_wait_times_out_with_202_and_is_bounded(site: Site) -> None:
    request = await create(site)
    response = await site.client.get(f"/api/v1/approvals/{request['id']}/wait?timeout=0.2", headers=site.bearer("bot"))
    assert response.status == 202
    assert (await response.json())["status"] == "pending"
    for timeout in ("600", "-1", "soon"):
        too_long = await site.client.get(
            f"/api/v1/approvals/{request['id']}/wait?timeout={timeout}", headers=site.bearer("bot")
        )
        assert too_long.status == 400


async def test_cancel_by_the_requester_only(site: Site) -> None:
    request = await create(site)
    other = await site.client.post(f"/api/v1/approvals/{request['id']}/cancel", json={}, headers=site.bearer("vic"))
    assert other.status == 403
    own = await site.client.post(
        f"/api/v1/approvals/{request['id']}/cancel", json={"reason": "done"}, headers=site.bearer("bot")
    )
    assert (own.status, (await own.json())["status"]) == (200, "cancelled")


async def test_queue_stats_audit_and_openapi(site: Site) -> None:
    request = await create(site, queue="email")
    await site.store.approve(request["id"], by="root")
    await create(site, queue="email")
    stats = (await (await site.client.get("/api/v1/queues", headers=site.bearer("vic"))).json())["queues"]
    assert stats[0]["queue"] == "email"
    assert stats[0]["depth"] == 1
    assert stats[0]["time_to_decision_p50"] is not None
    audit = await (await site.client.get("/api/v1/audit?limit=2", headers=site.bearer("vic"))).json()
    assert [e["type"] for e in audit["events"]] == ["created", "approved"]
    assert audit["next_cursor"]
    older = await (
        await site.client.get(f"/api/v1/audit?before={audit['next_cursor']}", headers=site.bearer("vic"))
    ).json()
    assert [e["type"] for e in older["events"]] == ["created"]
    document = await (await site.client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/approvals/{id}/wait" in document["paths"]


async def test_unknown_and_malformed_ids_are_404(site: Site) -> None:
    for request_id in ("0" * 32, "not-an-id"):
        response = await site.client.get(f"/api/v1/approvals/{request_id}", headers=site.bearer("vic"))
        assert response.status == 404


async def test_credentials(site: Site) -> None:
    assert (await site.client.get("/api/v1/queues")).status == 401
    assert (await site.client.get("/api/v1/queues", headers={"Authorization": "Bearer apt_nope"})).status == 401
    token = site.tokens["vic"]
    await site.users.revoke_token(token.split("_")[1])
    assert (await site.client.get("/api/v1/queues", headers={"Authorization": f"Bearer {token}"})).status == 401


async def test_metrics_health_and_readiness(site: Site) -> None:
    request = await create(site, queue="ops")
    await site.store.reject(request["id"], by="root", reason="no")
    await create(site, queue="ops")
    assert (await site.client.get("/metrics")).status == 401  # it names reviewers: a scraper sends a token
    response = await site.client.get("/metrics", headers=site.bearer("vic"))
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    assert value(text, "approvals_queue_depth", queue="ops") == 1
    assert value(text, "approvals_decisions_total", queue="ops", outcome="rejected") == 1
    assert value(text, "approvals_requests_created_total", queue="ops") == 2
    assert value(text, "approvals_wake_latency_seconds_bucket", le="+Inf") is not None
    assert any(name == "approvals_waiting_coroutines" for name, _ in samples(text))
    openmetrics = await site.client.get(
        "/metrics", headers=site.bearer("vic") | {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await openmetrics.text()).rstrip().endswith("# EOF")
    assert (await site.client.get("/healthz")).status == 200
    assert (await (await site.client.get("/readyz")).json())["status"] == "ready"


async def test_every_api_route_is_in_the_openapi_document(site: Site) -> None:
    document = await (await site.client.get("/api/v1/openapi.json")).json()
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routes = {
        (route.resource.canonical, route.method)
        for route in site.client.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(("/api/v1/", "/run-agent"))
        and route.method not in ("HEAD", "OPTIONS")
    }
    routes.discard(("/api/v1/openapi.json", "GET"))
    assert routes == documented
