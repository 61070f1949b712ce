"""Decision links from emails: a GET shows what the link would do, only the POST decides.

Mail scanners and link previews fetch every link in a message, so opening one must never decide.
The page asks the recipient to confirm (and, to reject, why); the form carries a CSRF token that
matches a cookie of its own (the recipient need not be signed in: the signed link says who they are).

The POST checks, in order: the link's signature, its expiry, the request (it exists and still
waits), that the link was not used before, that the request's arguments are the ones emailed, the
recipient (a reviewer with that address, who may decide it), and then uses it: once, whatever
happens next.
Each refusal answers with the reason, decides nothing, and is noted in the audit as `refused`.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from aiohttp import web

from approvals import (
    AlreadyDecided,
    ApprovalRequest,
    Decision,
    InvalidRequest,
    RequestNotFound,
    SelfDecisionForbidden,
)
from approvals import validation as check
from approvals.notify.links import Link, args_digest, claims, link_key, read_link
from approvals.notify.notifier import MayDecide

from .. import appkeys
from ..access.auth import already_said, can_decide, why_not_decide
from ..access.login import secrets_equal
from ..access.users import User, UserStore
from ..http.inputs import form_text, read_form
from ..http.params import store_of
from ..http.render import render
from .refusals import WINDOW, note_refused

LINK_CSRF_COOKIE = "apr_link_csrf"


@dataclass
class Refused(Exception):
    """Why a link may not decide: said to the person, and (on a POST) noted in the audit."""

    status: int
    message: str
    approval: ApprovalRequest | None = None


@dataclass(frozen=True)
class Usable:
    link: Link
    approval: ApprovalRequest
    user: User


async def link_page(request: web.Request) -> web.Response:
    """What the link would do, and a button to do it: never a decision by itself."""
    token = request.match_info["token"]
    try:
        usable = await _check(request, token)
    except Refused as refused:
        return _refusal_page(request, refused)
    csrf = request.cookies.get(LINK_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = _page(request, usable, csrf=csrf)
    _set_csrf_cookie(request, response, csrf)
    return response


async def use_link(request: web.Request) -> web.Response:
    """Decide as the link says, once, if everything still holds; else say why not and note it."""
    token = request.match_info["token"]
    form = await read_form(request)
    cookie, submitted = request.cookies.get(LINK_CSRF_COOKIE) or "", form_text(form.get("csrf_token")) or ""
    if not cookie or not secrets_equal(cookie, submitted):
        return _refusal_page(request, Refused(403, "This form expired or did not come from this site; open the link "
                                                   "from the email again."))  # fmt: skip
    reason = (form_text(form.get("reason")) or "").strip() or None
    try:
        usable = await _check(request, token)
        if (problem := _reason_problem(usable.link, reason)) is not None:
            return _page(request, usable, csrf=cookie, error=problem, status=400)
        decision = await _decide(request, usable, reason)
    except Refused as refused:
        claimed, who = _claimed_id(token, refused.approval), await _who(request, token)
        said = f"email link: {refused.message}"
        if not await note_refused(request, claimed, by=who, reason=said, approval=refused.approval, via="email"):
            refused = Refused(429, f"Too many refused attempts from your address; try again in {WINDOW // 60:.0f} "
                                   "minutes.")  # fmt: skip
        return _refusal_page(request, refused)
    link, approval, user = usable.link, usable.approval, usable.user
    context = {"r": approval, "outcome": link.outcome, "done": decision, "recipient": user, "error": None}
    return render(request, "link.html", context | {"reason": "", "csrf": ""})


def _reason_problem(link: Link, reason: str | None) -> str | None:
    """What is wrong with the reason given (a rejection needs one), if anything."""
    try:
        checked = check.reason(reason)
    except InvalidRequest as error:
        return f"The reason {error.details[0]['message']}."
    if link.outcome == "reject" and checked is None:
        return "Say why you reject it: the agent is told."
    return None


async def _decide(request: web.Request, usable: Usable, reason: str | None) -> Decision:
    """Use the link (once, whatever happens next) and decide; Refused if it was used or decided meanwhile."""
    store, link, approval, user = store_of(request), usable.link, usable.approval, usable.user
    remaining = max(1, int(link.expires_at - time.time()) + 60)
    if not await store.redis.set(store.keys.link_used(link.nonce), user.name, nx=True, ex=remaining):
        raise Refused(409, "This link was already used: each decision link works once.", approval)
    try:
        if link.outcome == "approve":
            return await store.approve(approval.id, by=user.name, reason=reason)
        return await store.reject(approval.id, by=user.name, reason=reason or "")
    except AlreadyDecided as error:
        raise Refused(409, already_said(error.decision) + ".", approval) from None
    except SelfDecisionForbidden:
        raise Refused(403, "You made this request, so someone else must decide it.", approval) from None


def may_decide_by_email(users: UserStore) -> MayDecide:
    """For the notifier: whether an email's recipient may decide the request (else it carries no links)."""

    async def may_decide(email: str, approval: ApprovalRequest) -> bool:
        return can_decide(await users.by_email(email), approval)

    return may_decide


async def _check(request: web.Request, token: str) -> Usable:
    """The link, its request and its recipient, if it may decide now; else Refused with the reason."""
    store = store_of(request)
    link = read_link(await link_key(store), token)
    if link is None:
        raise Refused(400, "This is not a decision link this site made (it may have been cut short, or changed).")
    approval = await _request(request, link.request_id)
    if link.expires_at <= time.time():
        raise Refused(410, "This link expired with the request it was for.", approval)
    if approval is None:
        raise Refused(404, "The request this link was for no longer exists.")
    if not approval.pending:  # also what a used link says: who decided, and when
        raise Refused(409, already_said(approval.decision()) + ".", approval)
    if await store.redis.exists(store.keys.link_used(link.nonce)):
        raise Refused(409, "This link was already used: each decision link works once.", approval)
    if args_digest(approval.args) != link.args_digest:
        raise Refused(409, "The request's arguments are not the ones this email showed, so the link cannot decide "
                           "it; open the request on the dashboard.", approval)  # fmt: skip
    user = await request.app[appkeys.USERS].by_email(link.email)
    if user is None:
        raise Refused(403, f"No reviewer has the address {link.email}, so nobody can decide with this link; an "
                           "admin can add it (approvals users add --email).", approval)  # fmt: skip
    if not can_decide(user, approval):
        raise Refused(403, why_not_decide(user, approval) or "You may not decide this request.", approval)
    return Usable(link, approval, user)


async def _request(request: web.Request, request_id: str) -> ApprovalRequest | None:
    try:
        return await store_of(request).get(request_id)
    except (RequestNotFound, InvalidRequest):
        return None


def _page(request: web.Request, usable: Usable, *, csrf: str, error: str | None = None, reason: str = "",
          status: int = 200) -> web.Response:  # fmt: skip
    context = {"r": usable.approval, "outcome": usable.link.outcome, "recipient": usable.user, "done": None,
               "error": error, "reason": reason, "csrf": csrf, "now": time.time()}  # fmt: skip
    return render(request, "link.html", context, status)


def _refusal_page(request: web.Request, refused: Refused) -> web.Response:
    context = {"status": refused.status, "message": refused.message, "r": refused.approval}
    return render(request, "link_refused.html", context, refused.status)


def _set_csrf_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    secure = request.app[appkeys.SETTINGS].secure_cookies
    response.set_cookie(LINK_CSRF_COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/links")


def _claimed_id(token: str, approval: ApprovalRequest | None) -> str:
    if approval is not None:
        return approval.id
    claimed = claims(token).get("r")
    return claimed[:64] if isinstance(claimed, str) and claimed.isprintable() else "-"


async def _who(request: web.Request, token: str) -> str:
    """Who tried, for the audit: the link's recipient if the link is genuine; else what a forgery claims."""
    link = read_link(await link_key(store_of(request)), token)
    if link is not None:
        return f"email:{link.email}"
    claimed = claims(token).get("e")
    shown = claimed[:254] if isinstance(claimed, str) and claimed.isprintable() else "nobody"
    return f"forged email link (claims {shown})"
