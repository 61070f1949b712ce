"""One request's page, and deciding it from there: approve, reject, or approve with edits."""

from __future__ import annotations

import difflib
import json
import time
from typing import Any

from aiohttp import web

from approvals import (
    AlreadyDecided,
    ApprovalRequest,
    InvalidRequest,
    RequestNotFound,
    SelfDecisionForbidden,
)
from approvals import validation as check

from .. import appkeys
from ..access.auth import (
    SESSION_COOKIE,
    already_said,
    can_decide,
    check_csrf,
    current_user,
    require_user,
    why_not_decide,
)
from ..access.users import User
from ..http.inputs import form_text, parse_json, read_form
from ..http.params import store_of
from ..http.render import render


async def _load(request: web.Request) -> ApprovalRequest:
    try:
        return await store_of(request).get(request.match_info["id"])
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
        "why_not_decide": why_not_decide(user, approval),
        "edited_text": json.dumps(approval.args, indent=2, ensure_ascii=False, sort_keys=True),
        "diff": diff,
        "error": None,
        "error_field": None,  # the form field the error is about: shown next to it, focus moved there
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
    context = _request_context(request, approval)
    if (session_id := _session_id(request)) is not None:
        flash = await request.app[appkeys.USERS].pop_flash(session_id, f"decide:{approval.id}")
        if flash is not None and approval.pending:  # the form's error, after POST-redirect-GET
            context |= {key: str(flash.get(key) or "") for key in ("error", "error_field", "reason", "edited_text")}
            context["edited_text"] = context["edited_text"] or _request_context(request, approval)["edited_text"]
    return render(request, "request.html", context | await _run_of(request, approval))


def _session_id(request: web.Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) if request[appkeys.VIA_SESSION] else None


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
    check_csrf(request, form_text(form.get("csrf_token")))
    approval = await _load(request)
    outcome, reason = form_text(form.get("outcome")), form_text(form.get("reason")) or None
    edited_text = form_text(form.get("edited_args"))
    context = {"edited_text": edited_text or _request_context(request, approval)["edited_text"], "reason": reason or ""}

    def again(status: int, error: str, **extra: Any) -> web.Response:
        return render(
            request, "request.html", _request_context(request, approval, **context, error=error, **extra), status
        )

    if not can_decide(user, approval):
        if approval.pending:
            return again(403, why_not_decide(user, approval) or "You may not decide this request")
        return again(409, already_said(approval.decision()))
    if outcome == "approve" and _edited(approval, edited_text):
        # Never drop edits silently: a plain Approve with changed arguments asks which was meant.
        return again(200, "", confirm_edits=True)
    try:
        edited = _parse_edit(edited_text) if outcome in ("edit", "preview") else None
        if outcome == "preview":
            return again(200, "", preview=_diff(approval.args, edited or {}))
        decision = await _decide(request, approval, user, outcome, reason, edited)
    except InvalidRequest as error:
        if (session_id := _session_id(request)) is None:
            return again(400, str(error), error_field=_field(error))
        # POST-redirect-GET: the page shows the error by its field, and a reload does not post again.
        flash = {"error": str(error), "error_field": _field(error), **context}
        await request.app[appkeys.USERS].put_flash(session_id, f"decide:{approval.id}", flash)
        anchor = {"reason": "reason", "edited_args": "edited-args"}.get(_field(error) or "", "decide-form")
        raise web.HTTPSeeOther(f"/requests/{approval.id}#{anchor}") from None
    except AlreadyDecided as error:
        approval = await _load(request)
        return again(409, already_said(error.decision))
    except SelfDecisionForbidden:
        return again(403, "You made this request, so someone else must decide it")
    target = "/queue" if form_text(form.get("next")) == "queue" else f"/requests/{approval.id}"
    raise web.HTTPSeeOther(f"{target}?done={decision.status.value}")


def _field(error: InvalidRequest) -> str | None:
    """The form field an error is about (edited_args.amount is about edited_args)."""
    field = error.field.split(".", 1)[0]
    return field if field in ("reason", "edited_args") else None


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
    store = store_of(request)
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
