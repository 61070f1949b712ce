"""JSON values as the core stores them: how deep they may nest, and reading them back safely.

It imports nothing of the package, so the models can read stored values and the checks can hold
new ones to the same limit without importing each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 32  # objects and arrays nested in one another, the outermost included
UNREADABLE = "_unreadable"  # the key of what stands in for a stored value too deep to show


def decode_json_object(text: str | None) -> dict[str, Any]:
    """Decode what `json_object` stored (our own hash). A value stored before the limits existed may
    be too deep to show (or to decode): a note stands in for it, so no page or response fails on it."""
    if not text:
        return {}
    note = {UNREADABLE: f"nested more than {MAX_DEPTH} levels deep ({len(text)} bytes): not shown"}
    try:
        decoded: dict[str, Any] = json.loads(text)
    except RecursionError:
        return note
    if text.count("{") + text.count("[") > MAX_DEPTH and too_deep(decoded):  # a cheap look first
        return note
    return decoded


def too_deep(value: object, depth: int = MAX_DEPTH) -> bool:
    """Whether `value` nests objects and arrays more than `depth` levels deep (without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, Mapping | list | tuple):
            if level > depth:
                return True
            stack.extend((item, level + 1) for item in (node.values() if isinstance(node, Mapping) else node))
    return False
