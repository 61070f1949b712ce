"""Running agents from HTTP: `POST /run-agent` runs one and answers when it ends; `/api/v1/runs`
queues runs for the workers and shows them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from approvals import InvalidRequest

from . import appkeys
from .auth import check_csrf, require_user
from .inputs import read_json_object
from .runstore import Run, RunNotFound

MAX_TASK = 20_000


async def run_agent(request: web.Request) -> web.Response:
    """`{"task": "..."}` -> `{"result": ...}` when the run ends, as in the smolagents async guide.

    Each request gets a fresh agent, so concurrent runs never share memory; while the agent waits for
    a person's approval, this request simply waits too (a coroutine, no thread).
    """
    require_user(request)
    body = await read_json_object(request)
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    task = body.get("task")
    if not isinstance(task, str) or not task.strip():
        raise web.HTTPBadRequest(text='task is required: send {"task": "what the agent should do"}')
    if len(task) > MAX_TASK:
        raise web.HTTPBadRequest(text=f"task must be at most {MAX_TASK} characters")
    agent = request.app[appkeys.AGENT_FACTORY](request.app[appkeys.RUNS_CLIENT])
    result = await agent.arun(task)
    return web.json_response({"result": _json_safe(result)})


def _json_safe(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


async def submit_run(request: web.Request) -> web.Response:
    """`POST /api/v1/runs`: queue a run for the workers; 202 with its id at once."""
    require_user(request)
    body = await read_json_object(request)
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    try:
        run = await request.app[appkeys.RUNS].submit(body.get("task", ""), request.app[appkeys.SETTINGS].agent_profile)
    except InvalidRequest as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    return web.json_response(run_json(run), status=202)


async def get_run(request: web.Request) -> web.Response:
    require_user(request)
    runs = request.app[appkeys.RUNS]
    try:
        run = await runs.get(request.match_info["id"])
    except RunNotFound:
        raise web.HTTPNotFound(text="There is no run with this id") from None
    return web.json_response(run_json(run) | {"steps": await runs.steps(run.id)})


async def list_runs(request: web.Request) -> web.Response:
    require_user(request)
    return web.json_response({"runs": [run_json(r) for r in await request.app[appkeys.RUNS].recent()]})


def run_json(run: Run) -> dict[str, Any]:
    return dataclasses.asdict(run) | {"status": run.status.value, "result": _json_safe(run.result)}
