"""Checks on everything that comes into the approval core; each failure is an `InvalidRequest`."""

from __future__ import annotations

import json
import math
import re
import reprlib
import unicodedata
from collections.abc import Mapping
from typing import Any

from .errors import InvalidRequest
from .jsonvalues import MAX_DEPTH, too_deep

__all__ = ["MAX_DEPTH", "too_deep"]  # with the checks below: the limits on JSON values, in one import

MAX_ACTION = 500
MAX_NAME = 200  # agent id, run id, requester, reviewer, idempotency key
MAX_REASON = 4000
MAX_JSON_BYTES = 64 * 1024  # args, edited args and context, each, encoded
MAX_VALUES = 10_000  # values (keys, items and everything they hold) in one args, edited args or context
MAX_TIMEOUT = 365 * 86400.0
MAX_PAGE = 500
MAX_OFFSET = 10**9
STREAM_ID_RE = re.compile(r"[0-9]{1,19}(-[0-9]{1,19})?")

QUEUE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
REQUEST_ID_RE = re.compile(r"[0-9a-f]{32}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_WHITESPACE_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
ZERO_WIDTH_JOINER = "\u200d"  # joins emoji: a visible part of the text it is in


# Shown as nothing, or as blank space, though they are there: Unicode's default-ignorable code points
# beyond category Cf (combining grapheme joiner, Hangul fillers, variation selectors...) and a few blanks.
_IGNORABLE = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0}
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)


def _invisible(character: str) -> bool:
    return character != ZERO_WIDTH_JOINER and unicodedata.category(character) == "Cf"


def _hidden(character: str) -> bool:
    """Invisible, text-direction, control (C0, C1), line or paragraph separating, or ignorable."""
    category = unicodedata.category(character)
    return _invisible(character) or category in ("Cc", "Zl", "Zp") or ord(character) in _IGNORABLE


def invisible_characters(text: str) -> list[str]:
    """The formatting characters in `text` that are not shown yet change what is shown: bidi overrides
    and isolates (U+202A-202E, U+2066-2069), marks, zero-width spaces, soft hyphens (category Cf)."""
    return [c for c in text if _invisible(c)]


def visible_text(text: str) -> str:
    """`text` with each invisible or text-direction character written out as a JSON escape (`\\u202e`;
    a surrogate pair above U+FFFF), so what a reviewer reads is what the agent will do, and inside a
    JSON string the escape means the same character."""
    if not invisible_characters(text):
        return text
    return "".join(_escaped(c) if _invisible(c) else c for c in text)


def _escaped(character: str) -> str:
    code = ord(character)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _visible(value: str, field: str) -> None:
    if found := [c for c in value if _hidden(c)]:
        names = ", ".join(sorted({f"U+{ord(c):04X}" for c in found}))
        raise InvalidRequest(field, f"must not contain invisible or text-direction characters ({names})")


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
    _visible(value, field)
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
    _visible(value, "action")
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
    json_shape(value, field)  # first: bounded, so that encoding cannot run out of stack
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(encoded.encode())
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidRequest(field, f"must be JSON-serialisable ({error})") from None
    if size > MAX_JSON_BYTES:
        raise InvalidRequest(field, f"must encode to at most {MAX_JSON_BYTES} bytes of JSON")
    return encoded


def json_shape(value: object, field: str) -> None:
    """Depth, number of values and string keys, without recursion (a hostile value may be deep).

    JSON would turn 1 into "1" and let {1: a, "1": b} collapse: what is reviewed must be what was sent.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise InvalidRequest(field, f"must hold at most {MAX_VALUES:,} values in all")
        if isinstance(node, Mapping | list | tuple) and depth > MAX_DEPTH:
            raise InvalidRequest(field, f"must not nest objects and arrays more than {MAX_DEPTH} levels deep")
        if isinstance(node, Mapping):
            for key, item in node.items():
                if not isinstance(key, str):
                    message = f"keys must be strings, not {type(key).__name__} {key!r:.40}"
                    raise InvalidRequest(field, f"must be JSON-serialisable ({message})")
                stack.append((item, depth + 1))
        elif isinstance(node, list | tuple):
            stack.extend((item, depth + 1) for item in node)


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


_SHORT = reprlib.Repr()  # depth- and size-bounded repr (3.11 takes no keyword arguments here)
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 6, 2000, 2000, 100, 100
MAX_RESULT_BYTES = 256 * 1024  # a tool's or a run's result, as kept


def result_json(value: Any) -> str:
    """Whatever a tool or an agent returned, as JSON to keep: as is when it can be, else (too deep,
    too large, not JSON) a short text standing in for it, so keeping it can never fail."""
    try:
        if too_deep(value):
            raise ValueError("too deep")
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        text = json.dumps(_SHORT.repr(value), ensure_ascii=False)
    if len(text) > MAX_RESULT_BYTES:
        text = json.dumps(text[: MAX_RESULT_BYTES // 2] + f"... [cut: {len(text):,} characters in all]")
    return text
