"""Reading request bodies: whatever is malformed about one becomes a 400 with a clear message."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from approvals.validation import MAX_DEPTH

# What aiohttp and json raise on bodies they cannot read: unknown charsets, undecodable bytes,
# broken multipart boundaries, numbers too long to convert, nesting too deep.
UNREADABLE = (LookupError, UnicodeDecodeError, ValueError, RecursionError)


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    try:
        return await request.post()
    except UNREADABLE:
        raise web.HTTPBadRequest(
            text="The form could not be read; send it as UTF-8 application/x-www-form-urlencoded"
        ) from None


TOO_DEEP = f"The body is nested too deeply: values may nest objects and arrays at most {MAX_DEPTH} levels deep"


async def read_json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except RecursionError:
        raise web.HTTPBadRequest(text=TOO_DEEP) from None
    except UNREADABLE:
        raise web.HTTPBadRequest(text="The body must be valid JSON (Content-Type: application/json)") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="The body must be a JSON object")
    return body


def parse_json(text: str) -> Any:
    """JSON typed by a person (edited arguments); raises ValueError with a readable message."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"is nested too deeply (objects and arrays at most {MAX_DEPTH} levels deep)") from None
    except ValueError:
        raise ValueError("is not valid JSON (a number is too long)") from None


def form_text(value: object) -> str | None:
    """A form field as text (None when absent, or a file rather than text)."""
    return value if isinstance(value, str) else None
