"""The queue page and its live rows: pending requests, oldest first, updated as they come and go."""

from __future__ import annotations

import asyncio
import json
import math
import time
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web

from approvals import (
    ApprovalRequest,
    AuditEvent,
    InvalidRequest,
)
from approvals import validation as check

from .. import appkeys
from ..access.auth import (
    SESSION_COOKIE,
    can_decide,
    current_user,
    require_user,
    still_signed_in,
    why_not_decide,
)
from ..access.users import Role
from ..http.params import page_number, queue_filter, store_of
from ..http.render import render, summary, when
from ..http.sse import KEEPALIVE, sse_message
from .bulk import MAX_SELECTED, pop_results
from .feed import LiveEvent

QUEUE_SCAN = 5000  # pending requests searched, oldest first, when the queue page filters or sorts
SORTS = {"oldest": "oldest first", "newest": "newest first", "expiring": "expiring soonest"}
AGES = {"": "any time", "300": "5 min or more", "3600": "1 h or more", "86400": "1 d or more"}
MINE = "mine"  # the queue filter's value for "the queues I review" (a reviewer's default when limited)


async def queue_page(request: web.Request) -> web.Response:
    user = require_user(request)
    page, size = page_number(request), request.app[appkeys.SETTINGS].page_size
    limited = user.role is Role.REVIEWER and "*" not in user.queues
    mine = request.query.get("queue", MINE if limited else "") == MINE and limited
    queue = None if mine else queue_filter(request)
    filters = {name: (request.query.get(name) or "").strip().lower() for name in ("action", "agent", "run")}
    sort, min_age = request.query.get("sort") or "oldest", request.query.get("age") or ""
    if sort not in SORTS or min_age not in AGES:
        raise web.HTTPBadRequest(text=f"sort must be one of {', '.join(SORTS)}; age one of {', '.join(AGES)[2:]}")
    grouped = request.query.get("group") == "1"
    store = store_of(request)
    if not mine and not any(filters.values()) and sort == "oldest" and not min_age and not grouped:
        found = await store.list_pending(queue, offset=(page - 1) * size, limit=size)  # one sorted-set page
        rows, total, row_count = [(r, [r.id]) for r in found.items], found.total, found.total
    else:
        wanted = set(user.queues) if mine else None
        matches = await _search_pending(request, queue, wanted, filters, float(min_age or 0))
        if sort == "newest":
            matches.reverse()
        elif sort == "expiring":
            matches.sort(key=lambda r: r.expires_at)
        every = identical_groups(matches) if grouped else [(r, [r.id]) for r in matches]
        rows, total, row_count = every[(page - 1) * size : page * size], len(matches), len(every)
    query = {k: v for k, v in filters.items() if v}
    query |= ({"sort": sort} if sort != "oldest" else {}) | ({"age": min_age} if min_age else {})
    query |= {"group": "1"} if grouped else {}
    query |= {"queue": MINE if mine else (queue or "")} if limited or queue else {}
    return render(
        request,
        "queue.html",
        {
            "rows": rows,
            "total": total,
            "grouped": grouped,
            "groups": row_count,
            "page": page,
            "pages": max(1, math.ceil(row_count / size)),
            "queue": MINE if mine else queue,
            "limited": limited,
            "filters": filters,
            "sort": sort,
            "sorts": SORTS,
            "age": min_age,
            "ages": AGES,
            "base_query": urlencode(query),
            "queues": await store_of(request).queue_stats(),
            "now": time.time(),
            "can_decide": can_decide,
            "why_not_decide": why_not_decide(user),
            "bulk": await pop_results(request),
            "max_selected": MAX_SELECTED,
        },
    )


async def _search_pending(
    request: web.Request, queue: str | None, queues: set[str] | None, filters: dict[str, str], min_age: float
) -> list[ApprovalRequest]:
    """Pending requests matching the filters, oldest first, among the oldest QUEUE_SCAN."""
    store, offset, now = store_of(request), 0, time.time()
    matches: list[ApprovalRequest] = []
    while offset < QUEUE_SCAN:
        page = await store.list_pending(queue, offset=offset, limit=200)
        for r in page.items:
            fields = {"action": r.action, "agent": f"{r.agent_id or ''} {r.requested_by or ''}", "run": r.run_id or ""}
            if (queues is not None and r.queue not in queues) or now - r.created_at < min_age:
                continue
            if all(needle in fields[name].lower() for name, needle in filters.items() if needle):
                matches.append(r)
        offset += 200
        if not page.has_more:
            break
    return matches


def identical_groups(requests: list[ApprovalRequest]) -> list[tuple[ApprovalRequest, list[str]]]:
    """Requests alike in queue, action, agent, requester and arguments, as (the first, every id), in order."""
    groups: dict[tuple[str, ...], tuple[ApprovalRequest, list[str]]] = {}
    for r in requests:
        key = (r.queue, r.action, r.agent_id or "", r.requested_by or "", json.dumps(r.args, sort_keys=True))
        groups.setdefault(key, (r, []))[1].append(r.id)
    return list(groups.values())


def row_html(request: web.Request, approval: ApprovalRequest) -> str:
    """One queue row, as the queue page renders it (sent to live browsers on creation)."""
    template = aiohttp_jinja2.get_env(request.app).get_template("_row.html")
    context = {"r": approval, "now": time.time(), "user": current_user(request), "csrf_token": request[appkeys.CSRF]}
    html: str = template.render(context | {"can_decide": can_decide})
    return html


async def events_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events for the queue page: rows to add when requests are created, ids to remove."""
    require_user(request)
    feed = request.app[appkeys.FEED]
    last_id = request.headers.get("Last-Event-ID")
    if last_id is not None:
        try:
            check.stream_id(last_id, "Last-Event-ID")
        except InvalidRequest as error:  # checked before the stream starts: afterwards no status can be sent
            raise web.HTTPBadRequest(text=str(error)) from None
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    session_id = request.cookies.get(SESSION_COOKIE) if request[appkeys.VIA_SESSION] else None
    async with feed.subscribe(session_id) as subscriber:
        try:
            if last_id:
                for missed in await feed.replay(last_id):
                    await response.write(_sse(request, missed))  # b"" for what the queue does not show
            await response.write(b": connected\n\n")
            while not subscriber.dropped:
                try:
                    event = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE)
                except TimeoutError:
                    # Also notices a sign-out in another process, or the user's removal.
                    if not await still_signed_in(request):
                        break
                    await response.write(b": keep-alive\n\n")
                    continue
                if event is not None and not subscriber.dropped:
                    await response.write(_sse(request, event))
        except ConnectionResetError:
            pass  # the browser went away (it reconnects by itself if it wants more)
    return response


# What takes a request off the queue; other audit entries (a reminder sent, say) change nothing shown.
LEAVING = {"approved", "rejected", "expired", "cancelled", "withdrawn"}


def _sse(request: web.Request, live: LiveEvent) -> bytes:
    event = live.event
    if event.type != "created" and event.type not in LEAVING:
        return b""
    data: dict[str, object] = {"id": event.request_id, "queue": event.queue, "type": event.type}
    if event.type == "created" and live.request is not None and live.request.pending:
        data["html"] = row_html(request, live.request)
        data["summary"] = f"{event.action}: {summary(event.args)}"
    elif event.type != "created":
        data["said"] = said(event)
    return sse_message(event.event_id, "created" if event.type == "created" else "decided", data)


def said(event: AuditEvent) -> str:
    """How a request left the queue, in a sentence for the people still looking at it."""
    at = when(event.at)
    if event.type == "expired":
        return f"Expired at {at}, undecided"
    if event.type == "withdrawn":
        return f"Withdrawn at {at}: its agent no longer waits for it"
    edited = " with edited arguments" if event.edited_args is not None else ""
    return f"{event.type.capitalize()}{edited} by {event.actor} at {at}"


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/queue")
