"""Running agents from HTTP: `POST /run-agent` runs a fresh agent of the configured profile per request."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from . import appkeys
from .auth import check_csrf, require_user
from .inputs import read_json_object

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
