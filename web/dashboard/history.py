"""History: reviewers' decisions by default, and with a filter every other ending."""

from __future__ import annotations

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


async def history_page(request: web.Request) -> web.Response:
    require_user(request)
    queue, page = queue_filter(request), page_number(request)
    filters = {name: (request.query.get(name) or "").strip().lower() for name in ("action", "agent", "reviewer")}
    outcome = request.query.get("outcome") or "decisions"
    if outcome not in OUTCOMES:
        raise web.HTTPBadRequest(text=f"outcome must be one of {', '.join(OUTCOMES)}")
    size = request.app[appkeys.SETTINGS].page_size
    matches = await _search_history(request, queue, filters, outcome, needed=page * size)
    query = {k: v for k, v in filters.items() if v} | ({"queue": queue} if queue else {})
    query |= {"outcome": outcome} if outcome != "decisions" else {}
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
            "base_query": urlencode(query),
            "queues": await store_of(request).queue_stats(),
        },
    )


async def _search_history(
    request: web.Request, queue: str | None, filters: dict[str, str], outcome: str, needed: int
) -> list[ApprovalRequest]:
    store, offset = store_of(request), 0
    matches: list[ApprovalRequest] = []
    while len(matches) <= needed and offset < HISTORY_SCAN:
        page = await store.list_decided(queue, offset=offset, limit=200)
        matches += [r for r in page.items if _matches(r, filters, outcome)]
        offset += 200
        if not page.has_more:
            break
    return matches


def _matches(approval: ApprovalRequest, filters: dict[str, str], outcome: str) -> bool:
    if outcome == "decisions" and not approval.status.by_reviewer:
        return False
    if outcome not in ("decisions", "all") and approval.status.value != outcome:
        return False
    fields = {
        "action": approval.action,
        "agent": f"{approval.agent_id or ''} {approval.requested_by or ''}",
        "reviewer": approval.decided_by or "",
    }
    return all(needle in fields[name].lower() for name, needle in filters.items() if needle)
