"""The runs pages: runs by state, starting one, and a run's page that follows it live."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from approvals import (
    ApprovalRequest,
)

from .. import appkeys
from ..access.auth import (
    can_cancel,
    check_csrf,
    require_user,
    still_signed_in,
)
from ..access.users import User
from ..api.runs import approvals_of, cancel, list_view, load_run, stream, submit, view_of, whole_number, why_waiting
from ..http.inputs import form_text, read_form
from ..http.render import render
from ..http.sse import KEEPALIVE, sse_message
from ..runs.store import ACTIVE, VIEWS, Run

LIST_SETTLE = 0.3  # seconds a live runs list waits after a change, so a burst of changes is drawn once


async def runs_page(request: web.Request) -> web.Response:
    user = require_user(request)
    context = await _list_context(request)
    return render(request, "runs.html", context | {"can_start": user is not None, "task": "", "error": None})


async def runs_list_events(request: web.Request) -> web.StreamResponse:
    """The runs page's live feed: the list it shows (same state and page), redrawn when runs change.

    A change on the runs channel only wakes the stream; changes that come together are drawn once,
    LIST_SETTLE later, and a list that looks the same is not sent again.
    """
    require_user(request)
    await _list_context(request)  # a bad state or page is refused before the stream starts
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    loop, shown = asyncio.get_running_loop(), None
    checked = loop.time()
    with request.app[appkeys.RUN_FEED].watch() as changed:
        try:
            await response.write(b": connected\n\n")
            while True:
                changed.clear()
                html = _render(request, "_runs_list.html", await _list_context(request))
                if html != shown:
                    shown = html
                    await response.write(sse_message(None, "list", {"html": html}))
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE)
                    await asyncio.sleep(LIST_SETTLE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                if request.app[appkeys.RUN_FEED].closing:
                    break
                if loop.time() - checked >= KEEPALIVE:  # however busy the runs: sign-outs end streams
                    checked = loop.time()
                    if not await still_signed_in(request):
                        break
        except ConnectionResetError:
            pass  # the browser went away
    return response


async def _list_context(request: web.Request) -> dict[str, Any]:
    view = view_of(request, default=ACTIVE)
    page_number = whole_number(request, "page", 1, 1, 100_000)
    size = request.app[appkeys.SETTINGS].page_size
    page = await list_view(request, view, (page_number - 1) * size, size)
    return {
        "runs": page.items,
        "total": page.total,
        "view": view,
        "views": VIEWS,
        "counts": await request.app[appkeys.RUNS].counts(),
        "page": page_number,
        "has_more": page.has_more,
        "now": time.time(),
    }


async def start_run_form(request: web.Request) -> web.StreamResponse:
    """The runs page's form: queue a run, then follow it on its page."""
    user = require_user(request)
    form = await read_form(request)
    check_csrf(request, form_text(form.get("csrf_token")))
    run = await submit(request, user, form_text(form.get("task")) or "")
    raise web.HTTPSeeOther(f"/runs/{run.id}")


async def run_page(request: web.Request) -> web.Response:
    user = require_user(request)
    run = await load_run(request)
    steps = await request.app[appkeys.RUNS].steps(run.id)
    context = _run_context(request, user, run, await approvals_of(request, run), await why_waiting(request, run))
    notice = "cancelled" if request.query.get("done") == "cancelled" else None
    return render(request, "run.html", context | {"steps": steps, "notice": notice})


async def cancel_run_form(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    form = await read_form(request)
    check_csrf(request, form_text(form.get("csrf_token")))
    await cancel(request, user, await load_run(request))
    raise web.HTTPSeeOther(f"{request.path.removesuffix('/cancel')}?done=cancelled")


async def run_events_page(request: web.Request) -> web.StreamResponse:
    """The run page's live feed: the same events, with the HTML to show them."""
    require_user(request)
    return await stream(request, await load_run(request), _Html(request))


def _run_context(
    request: web.Request, user: User | None, run: Run, approvals: list[ApprovalRequest], why_waiting: str | None
) -> dict[str, Any]:
    return {"run": run, "approvals": approvals, "can_cancel": can_cancel(user, run), "why_waiting": why_waiting}


class _Html:
    """The run stream's events drawn as the run page draws them."""

    def __init__(self, request: web.Request) -> None:
        self.request = request

    def step(self, step: dict[str, Any]) -> str:
        return _render(self.request, "_step.html", {"s": step})

    def run(self, run: Run, approvals: list[ApprovalRequest], why_waiting: str | None) -> str:
        context = _run_context(self.request, self.request[appkeys.PRINCIPAL], run, approvals, why_waiting)
        return _render(self.request, "_run_status.html", context | {"csrf_token": self.request[appkeys.CSRF]})


def _render(request: web.Request, template: str, context: dict[str, Any]) -> str:
    html: str = aiohttp_jinja2.get_env(request.app).get_template(template).render(context)
    return html
