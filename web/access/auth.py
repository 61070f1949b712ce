"""Who is asking: a browser session (cookie) or an API bearer token; and CSRF protection for forms.

Views call `require_user(request)` and the permission helpers; only this module reads credentials.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from approvals import ApprovalRequest, Decision, Status

from .. import appkeys
from ..http.render import wants_json
from .users import Role, User

if TYPE_CHECKING:
    from ..runs.store import Run

SESSION_COOKIE = "apr_session"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    users = request.app[appkeys.USERS]
    settings = request.app[appkeys.SETTINGS]
    request[appkeys.PRINCIPAL] = None
    request[appkeys.CSRF] = None
    request[appkeys.VIA_SESSION] = False
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        user = await users.user_for_token(authorization.removeprefix("Bearer ").strip())
        if user is None:
            raise web.HTTPUnauthorized(
                text="The API token is unknown or revoked; create one with 'approvals tokens create'"
            )
        request[appkeys.PRINCIPAL] = user
    elif session_id := request.cookies.get(SESSION_COOKIE):
        session = await users.get_session(session_id, settings.session_ttl)
        user = await users.user_for_session(session) if session is not None else None
        if session is not None and user is not None:
            request[appkeys.PRINCIPAL] = user
            request[appkeys.CSRF] = session.csrf_token
            request[appkeys.VIA_SESSION] = True
    return await handler(request)


def current_user(request: web.Request) -> User | None:
    user: User | None = request[appkeys.PRINCIPAL]
    return user


def require_user(request: web.Request) -> User:
    """The signed-in user; browsers are sent to the login page, API clients get a 401."""
    user = current_user(request)
    if user is None:
        if wants_json(request):
            raise web.HTTPUnauthorized(text="Sign in, or send 'Authorization: Bearer <token>'")
        raise web.HTTPSeeOther("/login?" + urlencode({"next": request.path_qs}))
    return user


def require_admin(request: web.Request) -> User:
    user = require_user(request)
    if user.role is not Role.ADMIN:
        raise web.HTTPForbidden(text="Only an admin may do this")
    return user


def check_csrf(request: web.Request, submitted: str | None) -> None:
    """State changes from a browser session must carry the session's CSRF token."""
    if not request[appkeys.VIA_SESSION]:
        return  # bearer tokens are not sent by browsers on their own: no CSRF risk
    expected = request[appkeys.CSRF] or ""
    if not submitted or not hmac.compare_digest(submitted.encode(errors="replace"), expected.encode()):
        raise web.HTTPForbidden(text="The form expired or did not come from this site; reload the page and try again")


def set_session_cookie(response: web.StreamResponse, request: web.Request, session_id: str) -> None:
    settings = request.app[appkeys.SETTINGS]
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(settings.session_ttl),
        httponly=True,
        samesite="Lax",
        secure=settings.secure_cookies,
        path="/",
    )


# -- who may do what ------------------------------------------------------------------------------


def can_decide(user: User | None, approval: ApprovalRequest) -> bool:
    return bool(user and approval.pending and user.can_decide(approval.queue) and approval.requested_by != user.name)


def why_not_decide(user: User | None, approval: ApprovalRequest | None = None) -> str | None:
    """Why `user` sees no way to decide `approval` (or, with none, requests in general): None if they can.

    Pages say it where the buttons would be, so nobody is left wondering; a forged POST gets the same words.
    """
    if user is None:
        return "Sign in to decide requests."
    if user.role is Role.VIEWER:
        return (
            "You are signed in as a viewer: you can follow requests, not decide them. An admin can make you a reviewer."
        )
    limited = user.role is Role.REVIEWER and "*" not in user.queues
    if approval is None:
        return f"You decide requests in {_queues(user.queues)}." if limited else None
    if not approval.pending:
        return None
    if not user.can_decide(approval.queue):
        return (
            f"This request is in the queue {approval.queue!r} and you decide requests in {_queues(user.queues)}, "
            "so someone who reviews that queue must decide it."
        )
    if approval.requested_by == user.name:
        return "You made this request, so someone else must decide it."
    return None


def already_said(decision: Decision | None) -> str:
    """Why a request can no longer be decided, in a sentence: who decided it, and when."""
    if decision is None:
        return "This request was already decided"
    recent = time.time() - decision.decided_at < 12 * 3600  # else the date too: a link can be opened days later
    at = time.strftime("%H:%M:%S" if recent else "%Y-%m-%d %H:%M:%S", time.gmtime(decision.decided_at))
    if decision.status is Status.WITHDRAWN:
        return f"Withdrawn at {at} UTC: {decision.reason}. Nobody waits for it any more, so it cannot be decided"
    return f"Already {decision.status.value} by {decision.decided_by} at {at} UTC"


def _queues(queues: tuple[str, ...]) -> str:
    names = [f"'{q}'" for q in queues]
    if not names:
        return "no queue"
    return f"the queue {names[0]}" if len(names) == 1 else "the queues " + ", ".join(names[:-1]) + f" and {names[-1]}"


def may_cancel(user: User | None, run: Run) -> bool:
    """Admins and reviewers may cancel any run; anyone may cancel the runs they started."""
    return user is not None and (user.role in (Role.ADMIN, Role.REVIEWER) or run.submitted_by == user.name)


def can_cancel(user: User | None, run: Run) -> bool:
    """Whether to offer the Cancel button."""
    return may_cancel(user, run) and not run.status.final


async def still_signed_in(request: web.Request) -> bool:
    """A stream outlives its first request: signing out, or the user's removal, must end it too."""
    users, settings = request.app[appkeys.USERS], request.app[appkeys.SETTINGS]
    if request[appkeys.VIA_SESSION]:
        session = await users.get_session(request.cookies.get(SESSION_COOKIE, ""), settings.session_ttl)
        return session is not None and await users.user_for_session(session) is not None
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return await users.user_for_token(token) is not None
