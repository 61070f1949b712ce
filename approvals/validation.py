"""Checks on everything that comes into the approval core; each failure is an `InvalidRequest`."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequest

MAX_ACTION = 500
MAX_NAME = 200  # agent id, run id, requester, reviewer, idempotency key
MAX_REASON = 4000
MAX_JSON_BYTES = 64 * 1024  # args, edited args and context, each, encoded
MAX_TIMEOUT = 365 * 86400.0
MAX_PAGE = 500
MAX_OFFSET = 10**9
STREAM_ID_RE = re.compile(r"[0-9]{1,19}(-[0-9]{1,19})?")

QUEUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
REQUEST_ID_RE = re.compile(r"[0-9a-f]{32}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_WHITESPACE_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def queue_name(value: object, field: str = "queue") -> str:
    if not isinstance(value, str) or not QUEUE_RE.fullmatch(value):
        raise InvalidRequest(field, "use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit")
    return value


def request_id(value: object) -> str:
    if not isinstance(value, str) or not REQUEST_ID_RE.fullmatch(value):
        raise InvalidRequest("request_id", "must be 32 lowercase hex characters, as returned by create()")
    return value


def name(value: object, field: str) -> str:
    """A short single-line identifier: agent, run, requester, reviewer, idempotency key."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(field, "must be a non-empty string")
    if len(value) > MAX_NAME:
        raise InvalidRequest(field, f"must be at most {MAX_NAME} characters")
    if _CONTROL_RE.search(value):
        raise InvalidRequest(field, "must not contain control characters")
    if value != value.strip():
        raise InvalidRequest(field, "must not start or end with spaces")
    encodable(value, field)
    return value


def optional_name(value: object, field: str) -> str | None:
    return None if value is None else name(value, field)


def action(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest("action", "must be a non-empty string describing what the agent wants to do")
    if len(value) > MAX_ACTION:
        raise InvalidRequest("action", f"must be at most {MAX_ACTION} characters; put details in args")
    if _CONTROL_RE.search(value):
        raise InvalidRequest("action", "must be a single line without control characters")
    encodable(value, "action")
    return value


def reason(value: object, field: str = "reason") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be a string")
    if len(value) > MAX_REASON:
        raise InvalidRequest(field, f"must be at most {MAX_REASON} characters")
    if _CONTROL_BUT_WHITESPACE_RE.search(value):
        raise InvalidRequest(field, "must not contain control characters other than newlines and tabs")
    encodable(value, field)
    return value


def json_object(value: object, field: str) -> str:
    """Encode a mapping of JSON-safe data, bounded in size; the encoded text is what gets stored."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(field, f"must be a mapping of names to JSON values, not {type(value).__name__}")
    try:
        _check_keys(value)
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(encoded.encode())
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidRequest(field, f"must be JSON-serialisable ({error})") from None
    if size > MAX_JSON_BYTES:
        raise InvalidRequest(field, f"must encode to at most {MAX_JSON_BYTES} bytes of JSON")
    return encoded


def _check_keys(value: object) -> None:
    """JSON would turn 1 into "1" and let {1: a, "1": b} collapse: what is reviewed must be what was sent."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, not {type(key).__name__} {key!r:.40}")
            _check_keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(item)


def encodable(value: str, field: str) -> None:
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidRequest(field, "must be valid Unicode text (it contains a lone surrogate)") from None


def seconds(value: object, field: str, maximum: float = MAX_TIMEOUT) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(field, "must be a number of seconds")
    if not 0 < value <= maximum:
        raise InvalidRequest(field, f"must be more than 0 and at most {maximum:g} seconds")
    return float(value)


def page(offset: object, limit: object) -> tuple[int, int]:
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidRequest("offset", f"must be an integer from 0 to {MAX_OFFSET}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return offset, limit


def stream_id(value: object, field: str = "cursor") -> str:
    """An audit event id such as '1700000000000-0' (ASCII digits, within Redis's 64-bit range)."""
    if not isinstance(value, str) or not STREAM_ID_RE.fullmatch(value):
        raise InvalidRequest(field, "must be an event id such as '1700000000000-0'")
    if any(int(part) >= 2**64 for part in value.split("-")):
        raise InvalidRequest(field, "is out of range")
    return value


def decode_json_object(text: str | None) -> dict[str, Any]:
    """Decode what `json_object` stored (trusted data from our own hash)."""
    if not text:
        return {}
    decoded: dict[str, Any] = json.loads(text)
    return decoded
