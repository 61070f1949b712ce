"""Signing in and out: the login page and its own CSRF cookie, throttled sign-ins, safe redirects."""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web
from yarl import URL

from .. import appkeys
from ..http.inputs import form_text, read_form
from ..http.render import render
from .auth import SESSION_COOKIE, check_csrf, set_session_cookie
from .throttle import LoginThrottle, client_address

LOGIN_CSRF_COOKIE = "apr_login_csrf"


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
    name, password = form_text(form.get("username")) or "", form_text(form.get("password")) or ""
    next_url = _safe_next(form_text(form.get("next")))
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    submitted = form_text(form.get("login_csrf")) or ""

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
    check_csrf(request, form_text(form.get("csrf_token")))
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
