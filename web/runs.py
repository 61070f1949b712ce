"""Running agents from HTTP, and watching them.

`POST /run-agent` runs one and answers when it ends. `/api/v1/runs` queues runs for the workers,
shows them, streams their steps as server-sent events and cancels them; `/runs` is the same for
people: the runs page, and a run page that follows the run live.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from approvals import ApprovalRequest, InvalidRequest
from approvals.asking import RunHolder, current_holder

from . import appkeys
from .auth import check_csrf, require_user
from .inputs import read_form, read_json_object
from .live import KEEPALIVE, sse_message
from .pages import still_signed_in
from .render import render
from .runstore import ACTIVE, VIEWS, Run, RunFinished, RunNotFound
from .schemas import RUN, NewRun, RunAgentResult, RunApproval, parse
from .users import Role, User

# -- running one agent per request -----------------------------------------------------------------


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


# -- the runs API ----------------------------------------------------------------------------------


async def submit_run(request: web.Request) -> web.Response:
    """`POST /api/v1/runs`: queue a run for the workers; 202 with its id at once."""
    user = require_user(request)
    body = parse(NewRun, await read_json_object(request))
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    run = await _submit(request, user, body.task, body.timeout)
    return web.json_response(run_json(run), status=202, headers={"Location": f"/api/v1/runs/{run.id}"})


async def _submit(request: web.Request, user: User, task: object, timeout: object = None) -> Run:
    settings = request.app[appkeys.SETTINGS]
    limit = settings.run_timeout if timeout is None else timeout
    runs = request.app[appkeys.RUNS]
    try:
        return await runs.submit(task, settings.agent_profile, submitted_by=user.name, timeout=limit)
    except InvalidRequest as error:
        raise web.HTTPBadRequest(text=str(error)) from None


async def get_run(request: web.Request) -> web.Response:
    require_user(request)
    run = await _load(request)
    runs = request.app[appkeys.RUNS]
    approvals = await _approvals_of(request, run)
    body = run_json(run) | {"steps": await runs.steps(run.id), "approvals": [_approval_json(a) for a in approvals]}
    return web.json_response(body)


async def list_runs(request: web.Request) -> web.Response:
    require_user(request)
    view, offset, limit = _view(request), _int(request, "offset", 0, 0, 100_000), _int(request, "limit", 50, 1, 200)
    page = await _list(request, view, offset, limit)
    return web.json_response(
        {"runs": [run_json(r) for r in page.items], "total": page.total, "offset": offset, "limit": limit}
    )


async def cancel_run(request: web.Request) -> web.Response:
    """`POST /api/v1/runs/{id}/cancel`: stop the run and withdraw its pending approval requests."""
    user = require_user(request)
    run = await _load(request)
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    return web.json_response(run_json(await _cancel(request, user, run)))


async def _cancel(request: web.Request, user: User, run: Run) -> Run:
    if not may_cancel(user, run):
        raise web.HTTPForbidden(text="Only an admin, a reviewer or whoever started the run may cancel it")
    try:
        return await request.app[appkeys.RUNS].cancel(run.id, by=user.name)
    except RunFinished as error:
        raise web.HTTPConflict(text=f"The run already {error.run.status.value}; it cannot be cancelled") from None


def may_cancel(user: User | None, run: Run) -> bool:
    """Admins and reviewers may cancel any run; anyone may cancel the runs they started."""
    return user is not None and (user.role in (Role.ADMIN, Role.REVIEWER) or run.submitted_by == user.name)


def can_cancel(user: User | None, run: Run) -> bool:
    """Whether to offer the Cancel button."""
    return may_cancel(user, run) and not run.status.final


async def run_events_api(request: web.Request) -> web.StreamResponse:
    """`GET /api/v1/runs/{id}/events`: the run's steps as server-sent events, from its first step."""
    require_user(request)
    return await _stream(request, await _load(request), html=False)


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


# -- the runs pages --------------------------------------------------------------------------------


async def runs_page(request: web.Request) -> web.Response:
    user = require_user(request)
    view = _view(request, default=ACTIVE)
    page_number = _int(request, "page", 1, 1, 100_000)
    size = request.app[appkeys.SETTINGS].page_size
    page = await _list(request, view, (page_number - 1) * size, size)
    return render(
        request,
        "runs.html",
        {
            "runs": page.items,
            "total": page.total,
            "view": view,
            "views": VIEWS,
            "counts": await request.app[appkeys.RUNS].counts(),
            "page": page_number,
            "has_more": page.has_more,
            "can_start": user is not None,
            "task": "",
            "error": None,
            "now": time.time(),
        },
    )


async def start_run_form(request: web.Request) -> web.StreamResponse:
    """The runs page's form: queue a run, then follow it on its page."""
    user = require_user(request)
    form = await read_form(request)
    check_csrf(request, _text(form.get("csrf_token")))
    run = await _submit(request, user, _text(form.get("task")) or "")
    raise web.HTTPSeeOther(f"/runs/{run.id}")


async def run_page(request: web.Request) -> web.Response:
    user = require_user(request)
    run = await _load(request)
    steps = await request.app[appkeys.RUNS].steps(run.id)
    return render(request, "run.html", _run_context(request, user, run, await _approvals_of(request, run)) | {
        "steps": steps, "notice": "cancelled" if request.query.get("done") == "cancelled" else None,
    })  # fmt: skip


async def cancel_run_form(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    form = await read_form(request)
    check_csrf(request, _text(form.get("csrf_token")))
    await _cancel(request, user, await _load(request))
    raise web.HTTPSeeOther(f"{request.path.removesuffix('/cancel')}?done=cancelled")


async def run_events_page(request: web.Request) -> web.StreamResponse:
    """The run page's live feed: the same events, with the HTML to show them."""
    require_user(request)
    return await _stream(request, await _load(request), html=True)


def _run_context(request: web.Request, user: User | None, run: Run, approvals: list[ApprovalRequest]) -> dict[str, Any]:
    return {"run": run, "approvals": approvals, "can_cancel": can_cancel(user, run)}


# -- the live stream -------------------------------------------------------------------------------


async def _stream(request: web.Request, run: Run, *, html: bool) -> web.StreamResponse:
    """Steps as they are recorded, then the run's end; `Last-Event-ID` (`attempt.step`) resumes.

    Each notice on the runs channel only wakes this stream up to read the run from Redis, so a lost
    notice delays an event by at most the keep-alive interval and never loses it. A run re-run by
    another worker starts its steps afresh: a `restart` event says so before its first step.
    """
    attempt, sent = _resume_point(request.headers.get("Last-Event-ID"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    follower = _Follower(request, response, html, attempt, sent)
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
    html: bool
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
            if self.html:
                data["html"] = _render(self.request, "_step.html", {"s": step})
            await self._send(f"{self.attempt}.{index}", "step", data)
            self.sent = index + 1
        approvals = await _approvals_of(self.request, run)
        state = (run.state, [(a.id, a.status) for a in approvals])
        if state != self.shown:
            self.shown = state
            await self._send(None, "run", _run_event(self.request, run, approvals, html=self.html))
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


def _run_event(request: web.Request, run: Run, approvals: list[ApprovalRequest], *, html: bool) -> dict[str, Any]:
    data = run_json(run) | {"approvals": [_approval_json(a) for a in approvals]}
    if html:
        context = _run_context(request, request[appkeys.PRINCIPAL], run, approvals)
        data["html"] = _render(request, "_run_status.html", context | {"csrf_token": request[appkeys.CSRF]})
    return data


def _render(request: web.Request, template: str, context: dict[str, Any]) -> str:
    html: str = aiohttp_jinja2.get_env(request.app).get_template(template).render(context)
    return html


# -- helpers ---------------------------------------------------------------------------------------


async def _load(request: web.Request) -> Run:
    try:
        return await request.app[appkeys.RUNS].get(request.match_info["id"])
    except RunNotFound:
        raise web.HTTPNotFound(text="There is no run with this id") from None


async def _approvals_of(request: web.Request, run: Run) -> list[ApprovalRequest]:
    store = request.app[appkeys.CLIENT].store
    return await store.get_many(await request.app[appkeys.RUNS].request_ids(run.id))


async def _list(request: web.Request, view: str, offset: int, limit: int) -> Any:
    try:
        return await request.app[appkeys.RUNS].list_runs(view, offset=offset, limit=limit)
    except InvalidRequest as error:
        raise web.HTTPBadRequest(text=str(error)) from None


def _view(request: web.Request, default: str = "all") -> str:
    view = request.query.get("state") or default
    if view not in VIEWS:
        raise web.HTTPBadRequest(text=f"state must be one of {', '.join(VIEWS)}")
    return view


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{name} must be between {low} and {high}")
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
