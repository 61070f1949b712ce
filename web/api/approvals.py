"""The JSON API under /api/v1, for agents in any language (bearer tokens) and for scripts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from approvals import (
    AlreadyDecided,
    ApprovalRequest,
    ApprovalStore,
    IdempotencyConflict,
    InvalidRequest,
    RequestNotFound,
    SelfDecisionForbidden,
    WaitTimeout,
)
from approvals import validation as check
from approvals.stats import decision_stats

from .. import appkeys
from ..access.auth import check_csrf, require_user
from ..access.users import Role
from ..http.inputs import read_json_object
from .schemas import (
    CancelInput,
    DecisionInput,
    NewRequest,
    QueueFigures,
    decision_json,
    event_json,
    invalid,
    parse,
    request_json,
)


def _bad(error: InvalidRequest) -> web.HTTPBadRequest:
    return invalid(error)


async def _body(request: web.Request) -> dict[str, Any]:
    return await read_json_object(request)


def _store(request: web.Request) -> ApprovalStore:
    return request.app[appkeys.CLIENT].store


async def _get(request: web.Request) -> ApprovalRequest:
    try:
        return await _store(request).get(request.match_info["id"])
    except (RequestNotFound, InvalidRequest):
        raise web.HTTPNotFound(text="There is no approval request with this id") from None


def _int_query(request: web.Request, name: str, default: int) -> int:
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number") from None


async def create(request: web.Request) -> web.Response:
    user = require_user(request)
    body = parse(NewRequest, await _body(request))
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    if body.run_id is not None and await request.app[appkeys.RUNS].exists(body.run_id):
        # Its requests are shown with the run's steps as their context: only its worker may ask for it.
        raise web.HTTPBadRequest(text="run_id names a run of this platform; only the worker running it may ask for it")
    try:
        approval = await _store(request).create(
            body.action,
            body.args,
            queue=body.queue,
            timeout=body.timeout,
            agent_id=body.agent_id,
            run_id=body.run_id,
            requested_by=user.name,
            idempotency_key=body.idempotency_key,
            context=body.context,
            args_schema=body.args_schema,
        )
    except InvalidRequest as error:
        raise _bad(error) from None
    except IdempotencyConflict as error:
        return web.json_response(
            {"error": {"status": 409, "message": str(error), "request_id": error.request_id}}, status=409
        )
    return web.json_response(request_json(approval), status=201)


async def list_requests(request: web.Request) -> web.Response:
    require_user(request)
    status = request.query.get("status", "pending")
    offset, limit = _int_query(request, "offset", 0), _int_query(request, "limit", 50)
    queue = request.query.get("queue") or None
    store = _store(request)
    try:
        if status == "pending":
            page = await store.list_pending(queue, offset=offset, limit=limit)
        elif status == "decided":
            page = await store.list_decided(queue, offset=offset, limit=limit)
        else:
            raise web.HTTPBadRequest(text="status must be pending or decided")
    except InvalidRequest as error:
        raise _bad(error) from None
    items = [request_json(r) for r in page.items]
    return web.json_response({"items": items, "total": page.total, "offset": page.offset, "limit": page.limit})


async def get_request(request: web.Request) -> web.Response:
    require_user(request)
    return web.json_response(request_json(await _get(request)))


async def decide(request: web.Request) -> web.Response:
    user = require_user(request)
    body = parse(DecisionInput, await _body(request))
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    approval = await _get(request)
    if not user.can_decide(approval.queue):
        raise web.HTTPForbidden(text=f"{user.name} may not decide requests in queue {approval.queue!r}")
    store = _store(request)
    try:
        if body.outcome == "approve":
            decision = await store.approve(approval.id, by=user.name, edited_args=body.edited_args, reason=body.reason)
        else:
            decision = await store.reject(approval.id, by=user.name, reason=body.reason)
    except InvalidRequest as error:
        raise _bad(error) from None
    except SelfDecisionForbidden as error:
        raise web.HTTPForbidden(text=str(error)) from None
    except AlreadyDecided as error:
        return _already(error)
    return web.json_response(decision_json(decision))


def _already(error: AlreadyDecided) -> web.Response:
    message = {"status": 409, "message": str(error), "decision": decision_json(error.decision)}
    return web.json_response({"error": message}, status=409)


async def cancel(request: web.Request) -> web.Response:
    user = require_user(request)
    body = parse(CancelInput, await _body(request) if request.can_read_body else {})
    check_csrf(request, request.headers.get("X-CSRF-Token"))
    approval = await _get(request)
    if approval.requested_by != user.name and user.role is not Role.ADMIN:
        raise web.HTTPForbidden(text="Only the requester or an admin may cancel a request")
    try:
        decision = await _store(request).cancel(approval.id, by=user.name, reason=body.reason)
    except InvalidRequest as error:
        raise _bad(error) from None
    except AlreadyDecided as error:
        return _already(error)
    return web.json_response(decision_json(decision))


async def wait(request: web.Request) -> web.Response:
    """Long poll: the decision (200) as soon as there is one, or 202 with the request still pending."""
    require_user(request)
    settings = request.app[appkeys.SETTINGS]
    try:
        timeout = float(request.query.get("timeout", min(30.0, settings.max_wait)))
        check.seconds(timeout, "timeout", maximum=settings.max_wait)
    except ValueError:
        raise web.HTTPBadRequest(text=f"timeout must be a number of seconds, at most {settings.max_wait:g}") from None
    approval = await _get(request)
    try:
        decision = await request.app[appkeys.CLIENT].wait(approval.id, timeout=timeout)
    except WaitTimeout:
        return web.json_response({"status": "pending", "request": request_json(await _get(request))}, status=202)
    return web.json_response(decision_json(decision))


async def queues(request: web.Request) -> web.Response:
    require_user(request)
    store = _store(request)
    stats = {s.queue: s for s in await decision_stats(store)}
    items = []
    for q in await store.queue_stats():
        s = stats.get(q.queue)
        figures = QueueFigures(
            queue=q.queue,
            depth=q.depth,
            oldest_age=q.oldest_age,
            decisions_per_minute=s.per_minute if s else 0.0,
            time_to_decision_p50=s.p50 if s else None,
            time_to_decision_p95=s.p95 if s else None,
            expired_last_hour=s.expired if s else 0,
            cancelled_last_hour=s.cancelled if s else 0,
            withdrawn_last_hour=s.withdrawn if s else 0,
        )
        items.append(figures.model_dump(mode="json"))
    return web.json_response({"queues": items})


async def audit(request: web.Request) -> web.Response:
    require_user(request)
    limit = _int_query(request, "limit", 100)
    try:
        page = await _store(request).read_audit(
            before=request.query.get("before"), after=request.query.get("after"), limit=limit
        )
    except InvalidRequest as error:
        raise _bad(error) from None
    return web.json_response({"events": [event_json(e) for e in page.events], "next_cursor": page.next_cursor})
