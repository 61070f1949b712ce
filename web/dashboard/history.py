"""History: reviewers' decisions by default, and with a filter every other ending."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from aiohttp import web

from approvals import (
    ApprovalRequest,
    Status,
)

from .. import appkeys
from ..access.auth import (
    require_user,
)
from ..http.params import page_number, queue_filter, store_of
from ..http.render import render

HISTORY_SCAN = 2000  # decided requests searched, newest first, by the history page's filters


# What the history page's Outcome filter offers: people's decisions (the default), everything, or one ending.
OUTCOMES = {
    "decisions": "reviewers' decisions",
    "all": "everything",
    **{status.value: status.value for status in Status if status.final},
}


SORTS = {"newest": "newest first", "oldest": "oldest first", "slowest": "longest wait first"}
WITHIN = {"": "any time", "3600": "in the last hour", "86400": "in the last day", "604800": "in the last week"}


async def history_page(request: web.Request) -> web.Response:
    require_user(request)
    queue, page = queue_filter(request), page_number(request)
    names = ("action", "agent", "run", "reviewer")
    filters = {name: (request.query.get(name) or "").strip().lower() for name in names}
    outcome = request.query.get("outcome") or "decisions"
    sort, within = request.query.get("sort") or "newest", request.query.get("within") or ""
    if outcome not in OUTCOMES:
        raise web.HTTPBadRequest(text=f"outcome must be one of {', '.join(OUTCOMES)}")
    if sort not in SORTS or within not in WITHIN:
        raise web.HTTPBadRequest(text=f"sort must be one of {', '.join(SORTS)}; within one of {', '.join(WITHIN)[2:]}")
    size = request.app[appkeys.SETTINGS].page_size
    since = time.time() - float(within) if within else 0.0
    # Newest first reads only as far as the page needs; another order needs every match to sort.
    needed = page * size if sort == "newest" else HISTORY_SCAN
    matches = await _search_history(request, queue, filters, outcome, since, needed)
    if sort == "oldest":
        matches.reverse()
    elif sort == "slowest":
        matches.sort(key=lambda r: (r.decided_at or r.created_at) - r.created_at, reverse=True)
    query = {k: v for k, v in filters.items() if v} | ({"queue": queue} if queue else {})
    query |= {"outcome": outcome} if outcome != "decisions" else {}
    query |= ({"sort": sort} if sort != "newest" else {}) | ({"within": within} if within else {})
    return render(
        request,
        "history.html",
        {
            "requests": matches[(page - 1) * size : page * size],
            "page": page,
            "has_more": len(matches) > page * size,
            "queue": queue,
            "filters": filters,
            "outcome": outcome,
            "outcomes": OUTCOMES,
            "sort": sort,
            "sorts": SORTS,
            "within": within,
            "withins": WITHIN,
            "base_query": urlencode(query),
            "queues": await store_of(request).queue_stats(),
        },
    )


async def _search_history(
    request: web.Request, queue: str | None, filters: dict[str, str], outcome: str, since: float, needed: int
) -> list[ApprovalRequest]:
    """Decided requests matching the filters, newest decision first, among the newest HISTORY_SCAN."""
    store, offset = store_of(request), 0
    matches: list[ApprovalRequest] = []
    while len(matches) <= needed and offset < HISTORY_SCAN:
        page = await store.list_decided(queue, offset=offset, limit=200)
        matches += [r for r in page.items if (r.decided_at or 0) >= since and _matches(r, filters, outcome)]
        offset += 200
        if not page.has_more or (page.items and (page.items[-1].decided_at or 0) < since):
            break  # the rest were decided earlier still
    return matches


def _matches(approval: ApprovalRequest, filters: dict[str, str], outcome: str) -> bool:
    if outcome == "decisions" and not approval.status.by_reviewer:
        return False
    if outcome not in ("decisions", "all") and approval.status.value != outcome:
        return False
    fields = {
        "action": approval.action,
        "agent": f"{approval.agent_id or ''} {approval.requested_by or ''}",
        "run": approval.run_id or "",
        "reviewer": approval.decided_by or "",
    }
    return all(needle in fields[name].lower() for name, needle in filters.items() if needle)
