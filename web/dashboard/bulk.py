"""Deciding several queue rows at once: each request decided exactly once, with its own audit entry.

A selection is a list of ids; each one goes through the same decide script as a single decision, so
a request someone else decided a moment ago keeps that decision, and the page says so row by row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from approvals import AlreadyDecided, InvalidRequest, RequestNotFound, SelfDecisionForbidden

from .. import appkeys
from ..access.auth import SESSION_COOKIE, already_said, can_decide, check_csrf, require_user, why_not_decide
from ..http.inputs import form_text, read_form

MAX_SELECTED = 100  # rows one bulk decision may carry: a page of the queue, and then some
FLASH = "bulk"


@dataclass(frozen=True, slots=True)
class RowResult:
    request_id: str
    action: str
    done: bool  # decided by this bulk decision
    said: str  # what happened, for the page


async def bulk_decide_form(request: web.Request) -> web.StreamResponse:
    """POST /queue/decide: approve or reject (one reason for all) the selected requests."""
    user = require_user(request)
    form = await read_form(request)
    check_csrf(request, form_text(form.get("csrf_token")))
    outcome, reason = form_text(form.get("outcome")), (form_text(form.get("reason")) or "").strip()
    # `id` for a row, `ids` (space-separated) for a group of identical requests; once each, in order
    chosen = [v for v in form.getall("id", []) if isinstance(v, str)]
    chosen += [i for v in form.getall("ids", []) if isinstance(v, str) for i in v.split()[: MAX_SELECTED + 1]]
    ids = list(dict.fromkeys(chosen))
    filters = parse_qsl(form_text(form.get("back")) or "")[:20]  # the queue page's filters, re-encoded
    back = "/queue" + (f"?{urlencode(filters)}" if filters else "")
    if outcome not in ("approve", "reject"):
        raise web.HTTPBadRequest(text="outcome must be approve or reject")
    if len(ids) > MAX_SELECTED:
        raise web.HTTPBadRequest(text=f"select at most {MAX_SELECTED} requests at once")
    results: list[RowResult] = []
    error: str | None = None
    if not ids:
        error = "Select the requests to decide first (the boxes at the start of the rows)."
    elif outcome == "reject" and not reason:
        error = "A rejection needs a reason the agents can act on: type it next to Reject selected."
    else:
        results = [await _decide_one(request, user, request_id, outcome, reason) for request_id in ids]
    flash: dict[str, Any] = {"outcome": outcome, "error": error, "results": [asdict(r) for r in results]}
    session_id = request.cookies.get(SESSION_COOKIE) if request[appkeys.VIA_SESSION] else None
    if session_id is None:  # a script with a token: the results as JSON, no page to come back to
        return web.json_response(flash, status=400 if error else 200)
    await request.app[appkeys.USERS].put_flash(session_id, FLASH, flash)
    raise web.HTTPSeeOther(back)


async def _decide_one(request: web.Request, user: Any, request_id: str, outcome: str, reason: str) -> RowResult:
    store = request.app[appkeys.CLIENT].store
    try:
        approval = await store.get(request_id)
    except (RequestNotFound, InvalidRequest):
        return RowResult(request_id, "?", False, "There is no such request (any more)")
    if not approval.pending:
        return RowResult(request_id, approval.action, False, already_said(approval.decision()))
    if not can_decide(user, approval):
        return RowResult(request_id, approval.action, False, why_not_decide(user, approval) or "Not allowed")
    try:
        if outcome == "approve":
            decision = await store.approve(request_id, by=user.name)
        else:
            decision = await store.reject(request_id, by=user.name, reason=reason)
    except AlreadyDecided as error:
        return RowResult(request_id, approval.action, False, already_said(error.decision))
    except SelfDecisionForbidden:
        return RowResult(request_id, approval.action, False, "You made this request, so someone else must decide it.")
    except InvalidRequest as error:
        return RowResult(request_id, approval.action, False, str(error))
    return RowResult(request_id, approval.action, True, f"{decision.status.value.capitalize()}")


async def pop_results(request: web.Request) -> dict[str, Any] | None:
    """The last bulk decision's results, for the queue page it redirected to (once)."""
    if not request[appkeys.VIA_SESSION]:
        return None
    return await request.app[appkeys.USERS].pop_flash(request.cookies.get(SESSION_COOKIE, ""), FLASH)
