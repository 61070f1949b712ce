"""Queued runs through the HTTP API and the dashboard, with the in-process worker on a real Redis:
run state, the live step stream, cancelling, and the runs pages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse

from approvals import ApprovalRequest, Status
from tests.conftest import eventually, until
from tests.web.conftest import Site, SiteFactory, csrf_of
from tests.web.metrics_text import value
from tests.web.profiles import LEDGER
from web import appkeys
from web.runs.store import RunStatus

LEDGER_PROFILE = "tests.web.profiles:ledger_agent"


@dataclass
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


async def next_event(response: ClientResponse, timeout: float = 10.0) -> Event:
    """The next server-sent event (comments skipped), parsed."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while True:
            line = (await response.content.readline()).decode()
            if not line:
                raise AssertionError("the stream ended")
            line = line.rstrip("\n")
            if line == "":
                if "event" in fields:
                    return Event(fields.get("id"), fields["event"], json.loads(fields["data"]))
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value


async def events_until(response: ClientResponse, kind: str, timeout: float = 10.0) -> list[Event]:
    events = []
    while True:
        event = await next_event(response, timeout)
        events.append(event)
        if event.event == kind:
            return events


async def list_until(response: ClientResponse, shows: Callable[[str], bool]) -> Event:
    """The first `list` event of the runs list's stream whose HTML passes `shows`."""
    while True:
        event = await next_event(response)
        if event.event == "list" and shows(event.data["html"]):
            return event


@pytest.fixture
async def site(make_site: SiteFactory) -> Site:
    return await make_site(agent_profile=LEDGER_PROFILE, in_process_worker=True)


async def submit(site: Site, task: str, user: str = "bot") -> dict[str, Any]:
    response = await site.client.post("/api/v1/runs", json={"task": task}, headers=site.bearer(user))
    assert response.status == 202, await response.text()
    body: dict[str, Any] = await response.json()
    assert response.headers["Location"] == f"/api/v1/runs/{body['id']}"
    return body


async def get_run(site: Site, run_id: str) -> dict[str, Any]:
    response = await site.client.get(f"/api/v1/runs/{run_id}", headers=site.bearer("vic"))
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def asked(site: Site, run_id: str) -> ApprovalRequest:
    """The approval request the run is waiting on."""
    for _ in range(500):
        pending = [r for r in (await site.store.list_pending()).items if r.run_id == run_id]
        if pending:
            return pending[0]
        await asyncio.sleep(0.01)
    raise AssertionError("the run did not ask for approval")


async def ledger(site: Site) -> list[str]:
    entries: list[str] = await site.store.redis.lrange(site.store.keys.prefix + LEDGER, 0, -1)
    return entries


async def test_a_queued_run_reports_its_state_steps_and_approvals(site: Site) -> None:
    run = await submit(site, "rotate the keys")
    assert (run["status"], run["submitted_by"], run["attempts"]) == ("queued", "bot", 0)
    request = await asked(site, run["id"])
    waiting = await get_run(site, run["id"])
    assert (waiting["status"], waiting["state"], waiting["waiting"]) == ("running", "waiting", True)
    assert [s["observations"].strip().splitlines()[-1] for s in waiting["steps"]] == ["ROTATE THE KEYS"]
    assert [(a["id"], a["status"]) for a in waiting["approvals"]] == [(request.id, "pending")]

    listed = await site.client.get("/api/v1/runs?state=waiting", headers=site.bearer("vic"))
    assert [r["id"] for r in (await listed.json())["runs"]] == [run["id"]]

    await site.store.approve(request.id, by="root")
    await eventually(lambda: _finished(site, run["id"]))
    done = await get_run(site, run["id"])
    assert (done["status"], done["state"], done["result"]) == ("finished", "finished", "done: rotate the keys")
    assert [s["step"] for s in done["steps"]] == [1, 2, 3]
    assert [(a["status"], a["decided_by"]) for a in done["approvals"]] == [("approved", "root")]
    assert await ledger(site) == ["rotate the keys"]
    for state, expected in (("finished", [run["id"]]), ("active", []), ("waiting", []), ("all", [run["id"]])):
        listed = await site.client.get(f"/api/v1/runs?state={state}", headers=site.bearer("vic"))
        assert [r["id"] for r in (await listed.json())["runs"]] == expected, state


async def _finished(site: Site, run_id: str) -> bool:
    return (await site.client.app[appkeys.RUNS].get(run_id)).finished_at is not None


async def test_bad_run_api_input_is_a_clear_400_or_404(site: Site) -> None:
    headers = site.bearer("vic")
    for path, message in (("/api/v1/runs?state=sleeping", "state must be one of"),
                          ("/api/v1/runs?limit=0", "limit must be between"),
                          ("/api/v1/runs?offset=x", "offset must be a whole number")):  # fmt: skip
        response = await site.client.get(path, headers=headers)
        assert response.status == 400
        assert message in (await response.json())["error"]["message"]
    for path in ("/api/v1/runs/nope", "/api/v1/runs/" + "0" * 32, "/api/v1/runs/" + "0" * 32 + "/events"):
        response = await site.client.get(path, headers=headers)
        assert response.status == 404
        assert "no run" in (await response.json())["error"]["message"]
    for body in (b'{"task": ""}', b'{"task": "\\ud800"}'):  # empty; a lone surrogate
        for path in ("/api/v1/runs", "/run-agent"):
            response = await site.client.post(path, data=body, headers={**headers, "Content-Type": "application/json"})
            assert response.status == 400, (path, body)
            assert "task" in (await response.json())["error"]["message"]
    run = await submit(site, "x")
    for last_id in ("yesterday", "1.-3", "1.99999999999999999999", "-1.0", "1"):
        response = await site.client.get(
            f"/api/v1/runs/{run['id']}/events", headers={**headers, "Last-Event-ID": last_id}
        )
        assert response.status == 400, last_id
        assert "Last-Event-ID" in (await response.json())["error"]["message"]


async def test_the_event_stream_gives_steps_as_they_happen_and_resumes(site: Site) -> None:
    run = await submit(site, "archive the logs")
    stream = await site.client.get(f"/api/v1/runs/{run['id']}/events", headers=site.bearer("vic"))
    assert stream.headers["Content-Type"] == "text/event-stream"
    request = await asked(site, run["id"])
    before = []
    while not any(e.event == "run" and e.data["state"] == "waiting" for e in before):
        before.append(await next_event(stream))
    steps = [e for e in before if e.event == "step"]
    assert [(e.id, e.data["step"]["step"]) for e in steps] == [("1.0", 1)]
    assert before[-1].data["approvals"][0]["id"] == request.id

    await site.store.approve(request.id, by="root")
    after = await events_until(stream, "end")
    assert [(e.id, e.data["step"]["step"]) for e in after if e.event == "step"] == [("1.1", 2), ("1.2", 3)]
    assert [e.data["state"] for e in after if e.event == "run"][-1] == "finished"
    assert after[-1].data == {"status": "finished"}
    stream.close()

    # A client that saw step 1.0 reconnects: it gets the rest, then the end.
    again = await site.client.get(
        f"/api/v1/runs/{run['id']}/events", headers={**site.bearer("vic"), "Last-Event-ID": "1.0"}
    )
    resumed = await events_until(again, "end")
    assert [e.id for e in resumed if e.event == "step"] == ["1.1", "1.2"]


async def test_cancelling_a_waiting_run_stops_it_and_withdraws_its_approval(site: Site) -> None:
    run = await submit(site, "drop the table")
    request = await asked(site, run["id"])
    stream = await site.client.get(f"/api/v1/runs/{run['id']}/events", headers=site.bearer("vic"))

    response = await site.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=site.bearer("vic"))
    assert response.status == 403  # a viewer, and not whoever started it
    response = await site.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=site.bearer("bot"))
    assert response.status == 200  # whoever started it may
    body = await response.json()
    assert (body["status"], body["cancelled_by"], body["error"]) == ("cancelled", "bot", "cancelled by bot")

    withdrawn = await site.store.get(request.id)
    assert (withdrawn.status, withdrawn.reason) == (Status.CANCELLED, "the run was cancelled")
    events = await events_until(stream, "end")
    assert events[-1].data == {"status": "cancelled"}
    worker = site.client.app[appkeys.RUNS_CLIENT]
    await until(lambda: worker.waiting == 0)
    await asyncio.sleep(0.2)  # the agent is stopped: no later step, no action
    done = await get_run(site, run["id"])
    assert (done["status"], len(done["steps"])) == ("cancelled", 1)
    assert await ledger(site) == []

    again = await site.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=site.bearer("root"))
    assert again.status == 409
    assert "already cancelled" in (await again.json())["error"]["message"]


async def test_a_run_cancelled_before_a_worker_takes_it_never_starts(make_site: SiteFactory) -> None:
    site = await make_site(agent_profile=LEDGER_PROFILE, in_process_worker=False)
    run = await submit(site, "never mind")
    response = await site.client.post(f"/api/v1/runs/{run['id']}/cancel", headers=site.bearer("root"))
    assert (await response.json())["status"] == "cancelled"

    from web.runs.profiles import load_profile
    from web.runs.worker import Worker

    app = site.client.app
    worker = Worker(app[appkeys.RUNS], app[appkeys.RUNS_CLIENT], load_profile(LEDGER_PROFILE), name="late")
    task = asyncio.create_task(worker.run())
    await eventually(lambda: _taken_and_acknowledged(app))
    worker.stop()
    await task
    await worker.drain(0)
    done = await get_run(site, run["id"])
    assert (done["status"], done["attempts"], done["steps"]) == ("cancelled", 0, [])


async def _taken_and_acknowledged(app: Any) -> bool:
    runs = app[appkeys.RUNS]
    info = await runs.redis.xinfo_groups(runs.keys.run_queue)
    return bool(info) and info[0]["pending"] == 0 and info[0]["entries-read"] == 1


async def test_runs_pages_start_follow_and_cancel_a_run(site: Site) -> None:
    csrf = await site.login("rita")
    refused = await site.client.post("/runs", data={"task": "no token"})
    assert refused.status == 403
    started = await site.client.post("/runs", data={"task": "<b>bold</b> move", "csrf_token": csrf})
    assert started.status == 200 and "/runs/" in str(started.url)
    run_id = str(started.url).rsplit("/", 1)[1]
    request = await asked(site, run_id)

    page = await (await site.client.get(f"/runs/{run_id}")).text()
    assert "&lt;b&gt;bold&lt;/b&gt; move" in page and "<b>bold</b>" not in page
    assert f'href="/requests/{request.id}"' in page and "waiting for approval" in page
    assert "Cancel this run" in page and "/static/run.js" in page
    listing = await (await site.client.get("/runs?state=waiting")).text()
    assert f'href="/runs/{run_id}"' in listing and 'aria-current="page">Waiting for approval' in listing

    # The approval request links back to the run and shows the step before it was asked.
    detail = await (await site.client.get(f"/requests/{request.id}")).text()
    assert f'href="/runs/{run_id}"' in detail
    assert "Steps that led to this request" in detail and "&lt;B&gt;BOLD&lt;/B&gt; MOVE" in detail

    live = await site.client.get(f"/runs/{run_id}/events")
    first = await events_until(live, "run")
    assert "waiting for approval" in first[-1].data["html"] and f"/requests/{request.id}" in first[-1].data["html"]
    step_html = [e.data["html"] for e in first if e.event == "step"]
    assert len(step_html) == 1 and "&lt;B&gt;BOLD&lt;/B&gt; MOVE" in step_html[0] and "<B>" not in step_html[0]

    cancelled = await site.client.post(f"/runs/{run_id}/cancel", data={"csrf_token": csrf})
    assert cancelled.status == 200 and str(cancelled.url).endswith("?done=cancelled")
    assert "Run cancelled." in await cancelled.text()
    assert "Cancel this run" not in await cancelled.text()
    assert (await events_until(live, "end"))[-1].data == {"status": "cancelled"}
    csrf_of(await (await site.client.get("/runs?state=cancelled")).text())


async def test_the_runs_list_is_live_as_runs_wait_and_end(site: Site) -> None:
    await site.login("vic")
    bad = await site.client.get("/runs/events?state=sleeping")
    assert bad.status == 400 and "state must be one of" in await bad.text()
    waiting = await site.client.get("/runs/events?state=waiting")
    first = await next_event(waiting)
    assert first.event == "list" and "No runs here." in first.data["html"]

    run = await submit(site, "<i>rotate</i> the keys")
    request = await asked(site, run["id"])
    shown = await list_until(waiting, lambda html: f'href="/runs/{run["id"]}"' in html)  # queued, running: counts
    assert "&lt;i&gt;rotate" in shown.data["html"] and "<i>" not in shown.data["html"]
    assert 'aria-current="page">Waiting for approval <span class="n">1</span>' in shown.data["html"]

    await site.store.approve(request.id, by="root")
    gone = await list_until(waiting, lambda html: f'href="/runs/{run["id"]}"' not in html)
    assert "No runs here." in gone.data["html"]
    page = await (await site.client.get("/runs")).text()
    assert 'id="runs-list" data-state="active" data-page="1"' in page and "/static/runs_live.js" in page


async def test_a_run_page_of_another_process_follows_a_run_to_its_end(site: Site) -> None:
    """Server and worker need not share a process: the stream follows Redis, not this process."""
    run = await submit(site, "compact the database")
    request = await asked(site, run["id"])
    csrf = await site.login("root")
    stream = await site.client.get(f"/runs/{run['id']}/events")
    await events_until(stream, "run")
    decided = await site.client.post(f"/requests/{request.id}/decide", data={"outcome": "approve", "csrf_token": csrf})
    assert decided.status == 200
    events = await events_until(stream, "end")
    final_run = [e for e in events if e.event == "run"][-1]
    assert final_run.data["result"] == "done: compact the database"
    assert "done: compact the database" in final_run.data["html"]


async def test_runs_and_workers_on_metrics_and_the_ops_page(site: Site) -> None:
    run = await submit(site, "resize the volume")
    await asked(site, run["id"])

    async def metrics_show_it() -> bool:
        text = await (await site.client.get("/metrics", headers=site.bearer("vic"))).text()
        return value(text, "approvals_worker_runs", worker="in-process") == 1

    await eventually(metrics_show_it, timeout=5)
    text = await (await site.client.get("/metrics", headers=site.bearer("vic"))).text()
    for state, count in (("queued", 0), ("running", 1), ("waiting", 1), ("finished", 0)):
        assert value(text, "approvals_runs", state=state) == count
    await site.login("vic")
    ops = await (await site.client.get("/ops")).text()
    assert "<code>in-process</code></td><td>1</td><td>16</td>" in ops
    assert 'href="/runs?state=waiting"' in ops


async def test_nobody_else_can_ask_in_the_name_of_a_run(site: Site) -> None:
    run = await submit(site, "pay the supplier")
    body = {"action": "wire all the money", "run_id": run["id"], "context": {"step": 9}}
    response = await site.client.post("/api/v1/approvals", json=body, headers=site.bearer("root"))
    assert response.status == 400
    assert "only the worker running it" in (await response.json())["error"]["message"]
    other = {"action": "fine", "run_id": "my-own-agent-run-7"}  # runs of agents elsewhere are the caller's own
    assert (await site.client.post("/api/v1/approvals", json=other, headers=site.bearer("root"))).status == 201


async def test_signing_out_ends_a_run_stream(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from web.api import runs as runs_module

    monkeypatch.setattr(runs_module, "KEEPALIVE", 0.2)
    run = await submit(site, "watch me")
    await asked(site, run["id"])
    csrf = await site.login("vic")
    stream = await site.client.get(f"/runs/{run['id']}/events")
    await events_until(stream, "run")
    await site.client.post("/logout", data={"csrf_token": csrf})
    async with asyncio.timeout(5):
        rest = await stream.content.read()  # the server ends the stream
    assert b"event: step" not in rest


async def test_a_take_over_restarts_the_steps_on_the_stream(make_site: SiteFactory) -> None:
    site = await make_site(agent_profile=LEDGER_PROFILE, in_process_worker=False)
    runs = site.client.app[appkeys.RUNS]
    run = await submit(site, "by hand")
    first = await runs.started(run["id"], "dies")
    await runs.add_step(run["id"], first, {"type": "action", "step": 1, "model_output": "first try"})
    stream = await site.client.get(f"/api/v1/runs/{run['id']}/events", headers=site.bearer("vic"))
    seen = await events_until(stream, "run")
    assert [(e.id, e.data["step"]["model_output"]) for e in seen if e.event == "step"] == [("1.0", "first try")]

    second = await runs.started(run["id"], "takes-over")  # its steps start afresh
    await runs.add_step(run["id"], second, {"type": "action", "step": 1, "model_output": "second try"})
    await runs.finish(run["id"], RunStatus.FINISHED, attempt=second, result="ok")
    rest = await events_until(stream, "end")
    assert [(e.event, e.id) for e in rest if e.event in ("restart", "step")] == [("restart", "2.-1"), ("step", "2.0")]
    assert [e.data["step"]["model_output"] for e in rest if e.event == "step"] == ["second try"]


async def test_a_queued_run_no_worker_will_take_says_so_and_what_to_do(make_site: SiteFactory) -> None:
    site = await make_site(agent_profile=LEDGER_PROFILE, in_process_worker=False)
    run = await submit(site, "nobody runs me")
    body = await get_run(site, run["id"])
    assert body["status"] == "queued" and "approvals worker" in body["why_waiting"]
    await site.login("vic")
    page = await (await site.client.get(f"/runs/{run['id']}")).text()
    assert "No worker is running" in page


async def test_a_run_a_worker_holds_has_nothing_to_explain(site: Site) -> None:
    taken = await submit(site, "a worker runs me")
    await asked(site, taken["id"])
    assert (await get_run(site, taken["id"]))["why_waiting"] is None
