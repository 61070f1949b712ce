"""The runs API: `POST /run-agent`, and `/api/v1/runs` to queue runs, show them, stream their steps
(server-sent events) and cancel them. The run pages reuse its stream, drawing steps as HTML."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any, Protocol

from aiohttp import web

from approvals import (
    ApprovalRequest,
    InvalidRequest,
)
from approvals.asking import RunHolder, current_holder
from approvals.heartbeat import live_processes

from .. import appkeys
from ..access.auth import (
    check_csrf,
    may_cancel,
    require_user,
    still_signed_in,
)
from ..access.users import User
from ..http.inputs import read_json_object
from ..http.sse import KEEPALIVE, sse_message
from ..runs.store import VIEWS, Run, RunFinished, RunNotFound, RunStatus
from .schemas import RUN, NewRun, RunAgentResult, RunApproval, parse


async def run_agent(request: web.Request) -> web.Response:
    """`{"task": "...", "timeout": 600}` -> `{"result": ..., "state": ...}` when the run ends, as in the
    smolagents async guide. `state` is "success" only for the agent's own final answer.

    Each request gets a fresh agent, so concurrent runs never share memory; while the agent waits for
    a person's approval, this request simply waits too (a coroutine, no thread). A caller that hangs
    up stops the run, and the requests it was waiting for are withdrawn.
    """
    user = require_user(request)
    body = parse(NewRun, await read_json_object(request))
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    limit = request.app[appkeys.SETTINGS].run_timeout if body.timeout is None else body.timeout
    task = body.task
    agent = request.app[appkeys.AGENT_FACTORY](request.app[appkeys.RUNS_CLIENT])
    current_holder.set(RunHolder(requested_by=user.name))  # its requests are the caller's: four eyes hold
    result = await agent.arun(task, return_full_result=True, run_timeout=limit)
    answer = RunAgentResult(result=_json_safe(result.output), state=result.state)
    return web.json_response(answer.model_dump(mode="json"))


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


async def submit_run(request: web.Request) -> web.Response:
    """`POST /api/v1/runs`: queue a run for the workers; 202 with its id at once."""
    user = require_user(request)
    body = parse(NewRun, await read_json_object(request))
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    run = await submit(request, user, body.task, body.timeout)
    return web.json_response(run_json(run), status=202, headers={"Location": f"/api/v1/runs/{run.id}"})


async def submit(request: web.Request, user: User, task: object, timeout: object = None) -> Run:
    settings = request.app[appkeys.SETTINGS]
    limit = settings.run_timeout if timeout is None else timeout
    runs = request.app[appkeys.RUNS]
    try:
        return await runs.submit(task, settings.agent_profile, submitted_by=user.name, timeout=limit)
    except InvalidRequest as error:
        raise web.HTTPBadRequest(text=str(error)) from None


NO_WORKER = (
    "No worker is running, so this run waits in the queue: start one with 'approvals worker' "
    "(on the embedded store, 'approvals serve' and 'approvals demo' run one themselves)"
)


async def why_waiting(request: web.Request, run: Run) -> str | None:
    """Why a queued run has not started, when something outside it stops it (no worker), else None."""
    if run.status is not RunStatus.QUEUED:
        return None
    processes = await live_processes(request.app[appkeys.CLIENT].store)
    return None if any("worker" in process.details for process in processes) else NO_WORKER


async def get_run(request: web.Request) -> web.Response:
    require_user(request)
    run = await load_run(request)
    runs = request.app[appkeys.RUNS]
    approvals = await approvals_of(request, run)
    body = run_json(run) | {"steps": await runs.steps(run.id), "approvals": [_approval_json(a) for a in approvals]}
    return web.json_response(body | {"why_waiting": await why_waiting(request, run)})


async def list_runs(request: web.Request) -> web.Response:
    require_user(request)
    view, offset, limit = (
        view_of(request),
        whole_number(request, "offset", 0, 0, 100_000),
        whole_number(request, "limit", 50, 1, 200),
    )
    page = await list_view(request, view, offset, limit)
    return web.json_response(
        {"runs": [run_json(r) for r in page.items], "total": page.total, "offset": offset, "limit": limit}
    )


async def cancel_run(request: web.Request) -> web.Response:
    """`POST /api/v1/runs/{id}/cancel`: stop the run and withdraw its pending approval requests."""
    user = require_user(request)
    run = await load_run(request)
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    return web.json_response(run_json(await cancel(request, user, run)))


async def cancel(request: web.Request, user: User, run: Run) -> Run:
    if not may_cancel(user, run):
        raise web.HTTPForbidden(text="Only an admin, a reviewer or whoever started the run may cancel it")
    try:
        return await request.app[appkeys.RUNS].cancel(run.id, by=user.name)
    except RunFinished as error:
        raise web.HTTPConflict(text=f"The run already {error.run.status.value}; it cannot be cancelled") from None


async def run_events_api(request: web.Request) -> web.StreamResponse:
    """`GET /api/v1/runs/{id}/events`: the run's steps as server-sent events, from its first step."""
    require_user(request)
    return await stream(request, await load_run(request))


def run_json(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = RUN.dump_python(run, mode="json")
    return data | {"state": run.state}


def _approval_json(approval: ApprovalRequest) -> dict[str, Any]:
    summary = RunApproval(
        id=approval.id,
        action=approval.action,
        queue=approval.queue,
        status=approval.status.value,
        created_at=approval.created_at,
        decided_by=approval.decided_by,
        reason=approval.reason,
    )
    return summary.model_dump(mode="json")


class Presenter(Protocol):
    """Draws what a stream sends as HTML too (the run pages); the API's own stream sends data only."""

    def step(self, step: dict[str, Any]) -> str: ...

    def run(self, run: Run, approvals: list[ApprovalRequest], why_waiting: str | None) -> str: ...


async def stream(request: web.Request, run: Run, presenter: Presenter | None = None) -> web.StreamResponse:
    """Steps as they are recorded, then the run's end; `Last-Event-ID` (`attempt.step`) resumes.

    Each notice on the runs channel only wakes this stream up to read the run from Redis, so a lost
    notice delays an event by at most the keep-alive interval and never loses it. A run re-run by
    another worker starts its steps afresh: a `restart` event says so before its first step.
    """
    attempt, sent = _resume_point(request.headers.get("Last-Event-ID"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    follower = _Follower(request, response, presenter, attempt, sent)
    loop = asyncio.get_running_loop()
    checked = loop.time()
    with request.app[appkeys.RUN_FEED].watch(run.id) as changed:
        try:
            await response.write(b": connected\n\n")
            while True:
                changed.clear()
                if await follower.catch_up(run.id):
                    break
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                if request.app[appkeys.RUN_FEED].closing:
                    break
                if loop.time() - checked >= KEEPALIVE:  # however busy the run: sign-outs end streams
                    checked = loop.time()
                    if not await still_signed_in(request):
                        break
        except ConnectionResetError:
            pass  # the client went away
    return response


@dataclasses.dataclass
class _Follower:
    """What one stream has sent so far, and how to send what is new."""

    request: web.Request
    response: web.StreamResponse
    presenter: Presenter | None
    attempt: int | None  # the attempt whose steps are being sent
    sent: int  # how many of its steps
    shown: object = None  # the state last sent

    async def catch_up(self, run_id: str) -> bool:
        """Send what changed since the last call; True once the run has ended (and that was sent)."""
        runs = self.request.app[appkeys.RUNS]
        run, steps = await runs.snapshot(run_id, self.sent)
        if run.attempts != self.attempt:  # the first read, or a take-over: every step of this attempt
            if self.sent:  # what was read started past this attempt's first step
                run, steps = await runs.snapshot(run_id, 0)
            if self.attempt is not None and run.attempts:
                await self._send(f"{run.attempts}.-1", "restart", {"attempt": run.attempts})
            self.attempt, self.sent = run.attempts, 0
        for index, step in enumerate(steps, start=self.sent):
            data = {"attempt": self.attempt, "index": index, "step": step}
            if self.presenter is not None:
                data["html"] = self.presenter.step(step)
            await self._send(f"{self.attempt}.{index}", "step", data)
            self.sent = index + 1
        approvals = await approvals_of(self.request, run)
        waiting = await why_waiting(self.request, run)
        state = (run.state, [(a.id, a.status) for a in approvals], waiting)
        if state != self.shown:
            self.shown = state
            data = run_json(run) | {"approvals": [_approval_json(a) for a in approvals], "why_waiting": waiting}
            if self.presenter is not None:
                data["html"] = self.presenter.run(run, approvals, waiting)
            await self._send(None, "run", data)
        if run.status.final:
            await self._send(None, "end", {"status": run.status.value})
        return run.status.final

    async def _send(self, event_id: str | None, event: str, data: dict[str, Any]) -> None:
        await self.response.write(sse_message(event_id, event, data))


def _resume_point(last_event_id: str | None) -> tuple[int | None, int]:
    """(attempt, steps already sent) from a reconnecting client's Last-Event-ID `attempt.index`."""
    if last_event_id is None:
        return None, 0
    attempt, dot, index = last_event_id.partition(".")
    try:
        if not dot or not 0 <= int(attempt) < 2**31 or not -1 <= int(index) < 2**31:
            raise ValueError
        return int(attempt), int(index) + 1
    except ValueError:
        raise web.HTTPBadRequest(text="Last-Event-ID must look like 'attempt.step', as sent by this stream") from None


async def load_run(request: web.Request) -> Run:
    try:
        return await request.app[appkeys.RUNS].get(request.match_info["id"])
    except RunNotFound:
        raise web.HTTPNotFound(text="There is no run with this id") from None


async def approvals_of(request: web.Request, run: Run) -> list[ApprovalRequest]:
    store = request.app[appkeys.CLIENT].store
    return await store.get_many(await request.app[appkeys.RUNS].request_ids(run.id))


async def list_view(request: web.Request, view: str, offset: int, limit: int) -> Any:
    try:
        return await request.app[appkeys.RUNS].list_runs(view, offset=offset, limit=limit)
    except InvalidRequest as error:
        raise web.HTTPBadRequest(text=str(error)) from None


def view_of(request: web.Request, default: str = "all") -> str:
    view = request.query.get("state") or default
    if view not in VIEWS:
        raise web.HTTPBadRequest(text=f"state must be one of {', '.join(VIEWS)}")
    return view


def whole_number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low} and {high}")
    return value
