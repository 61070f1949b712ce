"""Reviewer pages: queue, request, history, ops, login. Server-rendered; they work without JavaScript."""

from __future__ import annotations

import asyncio
import difflib
import hmac
import json
import math
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from redis.exceptions import RedisError
from yarl import URL

from approvals import (
    AlreadyDecided,
    ApprovalRequest,
    ApprovalStore,
    Decision,
    InvalidRequest,
    RequestNotFound,
    SelfDecisionForbidden,
    Status,
)
from approvals import validation as check
from approvals.heartbeat import live_processes
from approvals.stats import recent_stats

from . import appkeys
from .auth import SESSION_COOKIE, check_csrf, current_user, require_user, set_session_cookie
from .inputs import parse_json, read_form
from .live import KEEPALIVE, LiveEvent, sse_message
from .render import render, summary
from .throttle import LoginThrottle, client_address
from .users import User

HISTORY_SCAN = 2000  # decided requests searched, newest first, by the history page's filters
LOGIN_CSRF_COOKIE = "apr_login_csrf"


def _store(request: web.Request) -> ApprovalStore:
    return request.app[appkeys.CLIENT].store


def _page_number(request: web.Request) -> int:
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        raise web.HTTPBadRequest(text="page must be a whole number") from None
    if not 1 <= page <= 100_000:
        raise web.HTTPBadRequest(text="page must be between 1 and 100000")
    return page


def _queue_filter(request: web.Request) -> str | None:
    queue = request.query.get("queue") or None
    if queue is not None:
        try:
            check.queue_name(queue)
        except InvalidRequest as error:
            raise web.HTTPBadRequest(text=str(error)) from None
    return queue


def can_decide(user: User | None, approval: ApprovalRequest) -> bool:
    return bool(user and approval.pending and user.can_decide(approval.queue) and approval.requested_by != user.name)


# -- queue -----------------------------------------------------------------------------------------


async def queue_page(request: web.Request) -> web.Response:
    require_user(request)
    queue, page = _queue_filter(request), _page_number(request)
    size = request.app[appkeys.SETTINGS].page_size
    pending = await _store(request).list_pending(queue, offset=(page - 1) * size, limit=size)
    return render(
        request,
        "queue.html",
        {
            "requests": pending.items,
            "total": pending.total,
            "page": page,
            "pages": max(1, math.ceil(pending.total / size)),
            "queue": queue,
            "queues": await _store(request).queue_stats(),
            "now": time.time(),
            "can_decide": can_decide,
        },
    )


def row_html(request: web.Request, approval: ApprovalRequest) -> str:
    """One queue row, as the queue page renders it (sent to live browsers on creation)."""
    template = aiohttp_jinja2.get_env(request.app).get_template("_row.html")
    context = {"r": approval, "now": time.time(), "user": current_user(request), "csrf_token": request[appkeys.CSRF]}
    html: str = template.render(context | {"can_decide": can_decide})
    return html


# -- one request -----------------------------------------------------------------------------------


async def _load(request: web.Request) -> ApprovalRequest:
    try:
        return await _store(request).get(request.match_info["id"])
    except (RequestNotFound, InvalidRequest):
        raise web.HTTPNotFound(text="There is no approval request with this id") from None


def _request_context(request: web.Request, approval: ApprovalRequest, **extra: Any) -> dict[str, Any]:
    user = current_user(request)
    edited = approval.edited_args
    diff = _diff(approval.args, edited) if edited is not None else None
    return {
        "r": approval,
        "now": time.time(),
        "can_decide": can_decide(user, approval),
        "own_request": bool(user and approval.requested_by == user.name),
        "edited_text": json.dumps(approval.args, indent=2, ensure_ascii=False, sort_keys=True),
        "diff": diff,
        "error": None,
        "preview": None,
        "reason": "",
        "run": None,
        "run_steps": [],
        "confirm_edits": False,
        **extra,
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old = json.dumps(before, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
    new = json.dumps(after, indent=2, ensure_ascii=False, sort_keys=True).splitlines()
    return list(difflib.unified_diff(old, new, "requested", "approved", lineterm="", n=2))[2:]


async def request_page(request: web.Request) -> web.Response:
    require_user(request)
    approval = await _load(request)
    return render(request, "request.html", _request_context(request, approval) | await _run_of(request, approval))


async def _run_of(request: web.Request, approval: ApprovalRequest) -> dict[str, Any]:
    """The run that asked, if it is one of ours, and the steps it took before asking."""
    runs = request.app[appkeys.RUNS]
    if approval.run_id is None or not await runs.exists(approval.run_id):
        return {"run": None, "run_steps": []}
    run = await runs.get(approval.run_id)
    asked_at = approval.context.get("step")
    if not isinstance(asked_at, int):
        return {"run": run, "run_steps": []}
    steps = await runs.steps(run.id)
    before = [s for s in steps if s.get("type") == "action" and isinstance(s.get("step"), int) and s["step"] < asked_at]
    return {"run": run, "run_steps": before}


async def decide_form(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    form = await read_form(request)
    check_csrf(request, _text(form.get("csrf_token")))
    approval = await _load(request)
    outcome, reason = _text(form.get("outcome")), _text(form.get("reason")) or None
    edited_text = _text(form.get("edited_args"))
    context = {"edited_text": edited_text or _request_context(request, approval)["edited_text"], "reason": reason or ""}

    def again(status: int, error: str, **extra: Any) -> web.Response:
        return render(
            request, "request.html", _request_context(request, approval, **context, error=error, **extra), status
        )

    if not can_decide(user, approval):
        if approval.pending:
            return again(403, "You may not decide this request: it is your own, or not in a queue you review")
        return again(409, _already(approval.decision()))
    if outcome == "approve" and _edited(approval, edited_text):
        # Never drop edits silently: a plain Approve with changed arguments asks which was meant.
        return again(200, "", confirm_edits=True)
    try:
        edited = _parse_edit(edited_text) if outcome in ("edit", "preview") else None
        if outcome == "preview":
            return again(200, "", preview=_diff(approval.args, edited or {}))
        decision = await _decide(request, approval, user, outcome, reason, edited)
    except InvalidRequest as error:
        return again(400, str(error))
    except AlreadyDecided as error:
        approval = await _load(request)
        return again(409, _already(error.decision))
    except SelfDecisionForbidden:
        return again(403, "You made this request, so someone else must decide it")
    target = "/queue" if _text(form.get("next")) == "queue" else f"/requests/{approval.id}"
    raise web.HTTPSeeOther(f"{target}?done={decision.status.value}")


def _already(decision: Decision | None) -> str:
    if decision is None:
        return "This request was already decided"
    at = time.strftime("%H:%M:%S", time.gmtime(decision.decided_at))
    if decision.status is Status.WITHDRAWN:
        return f"Withdrawn at {at} UTC: {decision.reason}. Nobody waits for it any more, so it cannot be decided"
    return f"Already {decision.status.value} by {decision.decided_by} at {at} UTC"


def _edited(approval: ApprovalRequest, edited_text: str | None) -> bool:
    """Whether the form's arguments differ from the ones asked for (unreadable JSON counts as an edit)."""
    if edited_text is None or not edited_text.strip():
        return False
    try:
        return bool(parse_json(edited_text) != approval.args)
    except ValueError:
        return True


async def _decide(
    request: web.Request, approval: ApprovalRequest, user: User, outcome: str | None, reason: str | None, edited: Any
) -> Any:
    store = _store(request)
    if outcome in ("approve", "approve_as_asked"):
        return await store.approve(approval.id, by=user.name, reason=reason)
    if outcome == "edit":
        return await store.approve(approval.id, by=user.name, edited_args=edited, reason=reason)
    if outcome == "reject":
        return await store.reject(approval.id, by=user.name, reason=reason or "")
    raise InvalidRequest("outcome", "must be approve, edit or reject")


def _parse_edit(text: str | None) -> dict[str, Any]:
    try:
        value = parse_json(text or "")
    except ValueError as error:
        raise InvalidRequest("edited_args", str(error)) from None
    if not isinstance(value, dict):
        raise InvalidRequest("edited_args", "must be a JSON object, like the arguments asked for")
    check.json_object(value, "edited_args")  # what the store will check, before it is shown as a difference
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# -- history ---------------------------------------------------------------------------------------


# What the history page's Outcome filter offers: people's decisions (the default), everything, or one ending.
OUTCOMES = {
    "decisions": "reviewers' decisions",
    "all": "everything",
    **{status.value: status.value for status in Status if status.final},
}


async def history_page(request: web.Request) -> web.Response:
    require_user(request)
    queue, page = _queue_filter(request), _page_number(request)
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
            "queues": await _store(request).queue_stats(),
        },
    )


async def _search_history(
    request: web.Request, queue: str | None, filters: dict[str, str], outcome: str, needed: int
) -> list[ApprovalRequest]:
    store, offset = _store(request), 0
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


# -- ops -------------------------------------------------------------------------------------------


async def ops_page(request: web.Request) -> web.Response:
    require_user(request)
    store = _store(request)
    queues, (stats, reviewers), processes, runs = await asyncio.gather(
        store.queue_stats(), recent_stats(store), live_processes(store), request.app[appkeys.RUNS].counts()
    )
    return render(
        request,
        "ops.html",
        {
            "reviewers": reviewers,
            "runs": runs,
            "workers": [p for p in processes if "worker" in p.details],
            "queues": queues,
            "stats": {s.queue: s for s in stats},
            "processes": processes,
            "redis": await redis_health(request),
            "settings": request.app[appkeys.SETTINGS].approvals,
            "subscribers": request.app[appkeys.FEED].subscribers,
        },
    )


async def redis_health(request: web.Request) -> dict[str, Any]:
    store = _store(request)
    started = time.perf_counter()
    try:
        await store.redis.ping()
        info = await store.redis.info("server") if not store.settings.embedded else {}
        memory = await store.redis.info("memory") if not store.settings.embedded else {}
    except (RedisError, OSError) as error:
        return {"ok": False, "error": str(error)}
    return {
        "ok": True,
        "latency_ms": (time.perf_counter() - started) * 1000,
        "version": info.get("redis_version", "embedded (fakeredis)"),
        "memory": memory.get("used_memory_human", "-"),
        "url": store.settings.display_url,
    }


# -- live events -----------------------------------------------------------------------------------


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
                    await response.write(_sse(request, missed))
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


async def still_signed_in(request: web.Request) -> bool:
    """A stream outlives its first request: signing out, or the user's removal, must end it too."""
    users, settings = request.app[appkeys.USERS], request.app[appkeys.SETTINGS]
    if request[appkeys.VIA_SESSION]:
        session = await users.get_session(request.cookies.get(SESSION_COOKIE, ""), settings.session_ttl)
        return session is not None and await users.user_for_session(session) is not None
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return await users.user_for_token(token) is not None


def _sse(request: web.Request, live: LiveEvent) -> bytes:
    event = live.event
    data: dict[str, object] = {"id": event.request_id, "queue": event.queue, "type": event.type}
    if event.type == "created" and live.request is not None and live.request.pending:
        data["html"] = row_html(request, live.request)
        data["summary"] = f"{event.action}: {summary(event.args)}"
    return sse_message(event.event_id, "created" if event.type == "created" else "decided", data)


# -- login -----------------------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or _new_token()
    response = render(
        request, "login.html", {"error": None, "next": _safe_next(request.query.get("next")), "login_csrf": token}
    )
    _set_login_cookie(request, response, token)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    settings, users = request.app[appkeys.SETTINGS], request.app[appkeys.USERS]
    form = await read_form(request)
    name, password = _text(form.get("username")) or "", _text(form.get("password")) or ""
    next_url = _safe_next(_text(form.get("next")))
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    submitted = _text(form.get("login_csrf")) or ""

    def failed(status: int, message: str) -> web.Response:
        fresh = token or _new_token()
        response = render(request, "login.html", {"error": message, "next": next_url, "login_csrf": fresh}, status)
        _set_login_cookie(request, response, fresh)
        return response

    if not token or not secrets_equal(token, submitted):
        return failed(403, "The login form expired; please try again")
    throttle = LoginThrottle(users.redis, users.keys, limit=settings.login_attempts, window=settings.login_window)
    address = client_address(request, settings.trusted_proxies)
    if (refusal := await throttle.attempt(name[:64], address)) is not None:
        return failed(429, refusal.message)
    user = await users.authenticate(name, password)
    if user is None:
        return failed(401, "Wrong user name or password")
    await throttle.succeeded(name[:64], address)
    session = await users.create_session(user, settings.session_ttl)
    response = web.HTTPSeeOther(next_url)
    set_session_cookie(response, request, session.session_id)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    check_csrf(request, _text(form.get("csrf_token")))
    if session_id := request.cookies.get(SESSION_COOKIE):
        await request.app[appkeys.USERS].end_session(session_id)
        request.app[appkeys.FEED].end_session(session_id)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def _safe_next(value: str | None) -> str:
    """Only paths of this site: a login must not bounce to somewhere else.

    Judged on the URL as it will be sent (yarl drops tabs and newlines, so "/\t/evil" becomes "//evil").
    """
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or "\\" in value:
        return "/queue"
    try:
        url = URL(value)
    except ValueError:
        return "/queue"
    text = str(url)
    if url.host is None and not url.scheme and text.startswith("/") and not text.startswith("//"):
        return text
    return "/queue"


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _set_login_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    secure = request.app[appkeys.SETTINGS].secure_cookies
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/login")


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/queue")
