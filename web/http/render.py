"""Rendering pages: the Jinja2 environment (autoescaped), its filters, and the error middleware.

Domain errors become HTTP errors in the views; this middleware only turns HTTP errors (and the
unexpected) into pages or JSON bodies in the house style.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import markupsafe
from aiohttp import web

from approvals.validation import visible_text

from .. import appkeys

log = logging.getLogger("approvals.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TEMPLATE_DIRS = [
    Path(__file__).resolve().parents[2] / "templates",  # a source checkout
    Path(__file__).resolve().parents[1] / "templates",  # an installed wheel (the build copies them into web/)
]


def setup_templates(app: web.Application) -> None:
    environment = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader([str(p) for p in TEMPLATE_DIRS if p.is_dir()]),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        finalize=shown,
    )
    environment.filters.update(age=age, when=when, pretty_json=pretty_json, summary=summary)
    environment.globals["server_now"] = time.time  # for the pages' ticking clocks (static/clock.js)


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    context = {
        "user": request.get(appkeys.PRINCIPAL),
        "csrf_token": request.get(appkeys.CSRF),
        "request": request,
    } | context
    return aiohttp_jinja2.render_template(template, request, context, status=status)


# -- filters ---------------------------------------------------------------------------------------


def shown(value: Any) -> Any:
    """Every value a template prints: text with its invisible and text-direction characters written
    out (`\\u202e`), so `report\\u202efdp.exe` cannot pass for `report...exe.pdf`. Then autoescaped."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return visible_text(value)
    return value


def age(seconds: float | None) -> str:
    """A duration as people say it: 45 s, 12 min, 3 h, 2 d."""
    if seconds is None:
        return "-"
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def fields_of(instance: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, without copying what they hold (`dataclasses.asdict` recurses
    into every nested value, and so fails on deep ones)."""
    return {field.name: getattr(instance, field.name) for field in dataclasses.fields(instance)}


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def summary(args: dict[str, Any], limit: int = 80) -> str:
    text = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- errors ----------------------------------------------------------------------------------------


JSON_PATHS = ("/api/", "/run-agent", "/metrics")


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(JSON_PATHS) or "application/json" in request.headers.get("Accept", "")


def error_response(
    request: web.Request, status: int, message: str, extra: dict[str, Any] | None = None
) -> web.Response:
    if wants_json(request):
        return web.json_response({"error": {"status": status, "message": message, **(extra or {})}}, status=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status)


DEFAULT_MESSAGES = {
    404: "There is nothing at this address",
    405: "This address does not accept that method",
    413: "The request body is too large",
}


def message_of(error: web.HTTPException) -> str:
    """Views put their message in `text`; aiohttp's own errors get a plain default."""
    text = error.text or ""
    if text and not text.startswith(f"{error.status}:"):
        return text
    return DEFAULT_MESSAGES.get(error.status, error.reason)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise  # redirects
        response = error_response(request, error.status, message_of(error), getattr(error, "extra", None))
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="approvals"'
        if "Allow" in error.headers:  # a 405 says which methods the address takes
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        path = "/links/<token>" if _secret_path(request.path) else request.path  # a link's token decides
        log.exception("approvals: unexpected error on %s %s", request.method, path)
        return error_response(request, 500, "Something went wrong on our side; it has been logged")


def _secret_path(path: str) -> bool:
    """Paths that are credentials themselves: email decision links."""
    return path.startswith("/links/")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response as it is prepared, streamed ones included."""
    response.headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    signed_in = request.get(appkeys.PRINCIPAL) is not None and not request.path.startswith("/static/")
    if signed_in or _secret_path(request.path):
        response.headers.setdefault("Cache-Control", "no-store")  # what a person saw stays theirs
