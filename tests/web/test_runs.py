"""POST /run-agent: a fresh agent per request; the run waits for a real approval that the test gives."""

from __future__ import annotations

import asyncio

import pytest

from approvals.errors import InvalidSettings
from tests.web.conftest import Site, SiteFactory
from web.runs.profiles import load_profile


async def test_run_agent_waits_for_approval_and_returns_the_result(site: Site) -> None:
    running = asyncio.create_task(
        site.client.post("/run-agent", json={"task": "rotate the API keys"}, headers=site.bearer("bot"))
    )
    for _ in range(500):
        page = await site.store.list_pending()
        if page.items:
            break
        await asyncio.sleep(0.01)
    request = page.items[0]
    assert request.action == "Carry out: rotate the API keys"
    assert (request.requested_by, request.agent_id) == ("bot", "demo-agent")  # the caller is the requester
    assert request.context["task"] == "rotate the API keys"
    await site.store.approve(request.id, by="root")
    response = await asyncio.wait_for(running, 10)
    assert response.status == 200
    assert await response.json() == {"result": "approved: Carry out: rotate the API keys", "state": "success"}


async def test_run_agent_stops_at_its_time_limit_and_withdraws_what_it_waited_for(site: Site) -> None:
    response = await site.client.post(
        "/run-agent", json={"task": "rotate the API keys", "timeout": 0.5}, headers=site.bearer("bot")
    )
    assert await response.json() == {"result": None, "state": "run_timeout"}
    [request] = (await site.store.list_decided(limit=5)).items
    assert (request.status.value, request.reason) == (
        "withdrawn", "the agent run reached its time limit while waiting",
    )  # fmt: skip
    assert (await site.store.list_pending()).total == 0
    bad = await site.client.post("/run-agent", json={"task": "x", "timeout": -1}, headers=site.bearer("bot"))
    assert bad.status == 400 and "timeout" in (await bad.json())["error"]["message"]


async def test_a_caller_hanging_up_withdraws_the_request_the_run_waited_for(site: Site) -> None:
    running = asyncio.create_task(
        site.client.post("/run-agent", json={"task": "rotate the API keys"}, headers=site.bearer("bot"))
    )
    for _ in range(500):
        if (page := await site.store.list_pending()).items:
            break
        await asyncio.sleep(0.01)
    running.cancel()  # the HTTP client goes away: the server cancels the handler, and the run with it
    await asyncio.gather(running, return_exceptions=True)
    for _ in range(500):
        if (await site.store.get(page.items[0].id)).status.value == "withdrawn":
            break
        await asyncio.sleep(0.01)
    assert (await site.store.get(page.items[0].id)).status.value == "withdrawn"


async def test_bad_run_requests_are_400(site: Site) -> None:
    headers = site.bearer("bot")
    for body, message in ((b"{oops", "valid JSON"), (b"{}", "task: missing or empty"), (b'{"task": "  "}', "task: missing or empty"),
                          (b'{"task": 5}', "task: missing or empty"), (b"[]", "JSON object")):  # fmt: skip
        response = await site.client.post(
            "/run-agent", data=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert response.status == 400
        assert message in (await response.json())["error"]["message"]
    assert (await site.client.post("/run-agent", json={"task": "x"})).status == 401


async def test_100_concurrent_runs_each_get_their_own_result(make_site: SiteFactory) -> None:
    site = await make_site(agent_profile="tests.web.profiles:echo_agent")
    tasks = [f"task number {n}" for n in range(100)]
    responses = await asyncio.gather(
        *(site.client.post("/run-agent", json={"task": task}, headers=site.bearer("bot")) for task in tasks)
    )
    results = [(await r.json())["result"] for r in responses]
    assert results == [task.upper() for task in tasks]


def test_profiles_load_by_name_or_fail_clearly() -> None:
    assert load_profile("demo").__name__ == "demo_agent"
    assert load_profile("tests.web.profiles:echo_agent").__name__ == "echo_agent"
    for name in ("nope", "no.such.module:f", "web.runs.profiles:missing"):
        with pytest.raises(InvalidSettings, match="agent"):
            load_profile(name)


async def test_runs_api_queues_a_run_that_the_in_process_worker_runs(make_site: SiteFactory) -> None:
    site = await make_site(agent_profile="tests.web.profiles:echo_agent", in_process_worker=True)
    response = await site.client.post("/api/v1/runs", json={"task": "count the sheep"}, headers=site.bearer("bot"))
    assert response.status == 202
    run_id = (await response.json())["id"]
    for _ in range(300):
        run = await (await site.client.get(f"/api/v1/runs/{run_id}", headers=site.bearer("vic"))).json()
        if run["status"] == "finished":
            break
        await asyncio.sleep(0.02)
    assert (run["status"], run["result"], run["worker"]) == ("finished", "COUNT THE SHEEP", "in-process")
    assert run["steps"][-1]["final"] is True
    listing = await (await site.client.get("/api/v1/runs", headers=site.bearer("vic"))).json()
    assert [r["id"] for r in listing["runs"]] == [run_id]
    assert (await site.client.post("/api/v1/runs", json={"task": ""}, headers=site.bearer("bot"))).status == 400
    assert (await site.client.get("/api/v1/runs/" + "0" * 32, headers=site.bearer("vic"))).status == 404
