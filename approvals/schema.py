"""The arguments' schema: what a request's arguments, and a reviewer's edits of them, must look like.

A request may carry a JSON Schema of its arguments (the approval tools send their tool's inputs).
The store checks the arguments against it when the request is made and a reviewer's edited
arguments when they are approved, so an edit the action could not run with is refused up front,
with a message per field, and nothing is written.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from agent_runtime.concurrency import default_thread_limiter

from . import validation as check
from .errors import InvalidRequest

MAX_SCHEMA_BYTES = 16 * 1024
MAX_PROBLEMS = 10  # problems listed per refusal
MAX_SUBSCHEMAS = 64  # schemas within the schema, all told
MAX_BRANCHES = 8  # alternatives in one anyOf / oneOf / allOf
MAX_ENUM = 64  # values in one enum
INLINE_BYTES = 1024  # arguments up to this size are checked on the event loop (well under a millisecond)

# A safe subset, so checking is quick whoever wrote the schema: no regular expressions (`pattern`
# could take forever), no references (`$ref` could loop), no `uniqueItems` (quadratic), and bounded
# alternatives and enums (each multiplies the work per argument).
KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const",
        "title", "description", "default", "examples", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems",
        "minProperties", "maxProperties", "anyOf", "oneOf", "allOf", "not", "$schema",
    }
)  # fmt: skip
# Keywords whose value is a schema, a list of schemas, or a mapping of names to schemas.
_SUBSCHEMA = frozenset({"items", "additionalProperties", "not"})
_SUBSCHEMAS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})


def check_schema(value: object, field: str = "args_schema") -> str:
    """The schema as JSON to store, or InvalidRequest: an object schema, of the safe subset, valid."""
    if not isinstance(value, Mapping):
        raise InvalidRequest(field, "must be a JSON Schema object, like the tool's input schema")
    check.json_shape(value, field)  # defaults, consts and enums hold values too: as deep as any
    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
        size = len(encoded.encode())
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidRequest(field, f"must be JSON-serialisable ({error})") from None
    if size > MAX_SCHEMA_BYTES:
        raise InvalidRequest(field, f"must encode to at most {MAX_SCHEMA_BYTES} bytes of JSON")
    problem = _problem_with(encoded)  # a tool sends the same schema with every call: checked once
    if problem is not None:
        raise InvalidRequest(field, problem)
    return encoded


@functools.lru_cache(maxsize=256)
def _problem_with(encoded: str) -> str | None:
    """What is wrong with the schema `encoded` holds, or None."""
    value = json.loads(encoded)
    if value.get("type") != "object":
        return 'must describe an object of named arguments ({"type": "object", ...})'
    try:
        if _check_keywords(value, "") > MAX_SUBSCHEMAS:
            return f"must hold at most {MAX_SUBSCHEMAS} schemas in all"
        Draft202012Validator.check_schema(value)
    except InvalidRequest as error:
        return error.details[0]["message"]
    except SchemaError as error:
        return f"is not a valid JSON Schema ({error.message})"
    return None


def _check_keywords(schema: object, field: str, depth: int = 0) -> int:
    """Refuse what is outside the safe subset; returns how many schemas `schema` holds, itself included."""
    if isinstance(schema, bool):
        return 1
    if not isinstance(schema, Mapping) or depth > 16:
        raise InvalidRequest(field, "must be made of schema objects, at most 16 levels deep")
    if unknown := sorted(set(schema) - KEYWORDS):
        raise InvalidRequest(field, f"uses {unknown}; allowed keywords are {sorted(KEYWORDS)}")
    _check_sizes(schema, field)
    count = 1
    for keyword, part in schema.items():
        for subschema in _subschemas(keyword, part):
            count += _check_keywords(subschema, field, depth + 1)
            if count > MAX_SUBSCHEMAS:
                return count
    return count


def _check_sizes(schema: Mapping[str, Any], field: str) -> None:
    if isinstance(schema.get("enum"), list) and len(schema["enum"]) > MAX_ENUM:
        raise InvalidRequest(field, f"enum may list at most {MAX_ENUM} values")
    for keyword in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(keyword), list) and len(schema[keyword]) > MAX_BRANCHES:
            raise InvalidRequest(field, f"{keyword} may hold at most {MAX_BRANCHES} schemas")


def _subschemas(keyword: str, part: object) -> list[object]:
    if keyword in _SUBSCHEMA:
        return [part]
    if keyword in _SUBSCHEMAS and isinstance(part, list):
        return part
    if keyword == "properties" and isinstance(part, Mapping):
        return list(part.values())
    return []


def safe_subset(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` (a tool's input schema) with what the safe subset lacks left out: the check is looser,
    never refused. Used for the approval tools, whose tools may describe their inputs more richly."""
    kept: dict[str, Any] = {}
    for keyword, part in schema.items():
        if keyword not in KEYWORDS or (keyword == "enum" and isinstance(part, list) and len(part) > MAX_ENUM):
            continue
        if keyword in _SUBSCHEMA and isinstance(part, Mapping):
            kept[keyword] = safe_subset(part)
        elif keyword in _SUBSCHEMAS and isinstance(part, list):
            if keyword == "prefixItems" or len(part) <= MAX_BRANCHES:
                kept[keyword] = [safe_subset(p) if isinstance(p, Mapping) else p for p in part]
        elif keyword == "properties" and isinstance(part, Mapping):
            kept[keyword] = {k: safe_subset(p) if isinstance(p, Mapping) else p for k, p in part.items()}
        else:
            kept[keyword] = part
    return kept


def same_json(a: object, b: object) -> bool:
    """Equal as JSON: unlike Python's ==, true is not 1 and 1 is not 1.0."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


async def check_args_off_loop(schema: Mapping[str, Any] | None, args: Any, field: str, size: int) -> None:
    """`check_args`, in a worker thread when the arguments are large (up to about a second of work at
    the size limit), so the event loop keeps serving everyone else meanwhile."""
    if schema is None:
        return
    if size <= INLINE_BYTES:
        check_args(schema, args, field)
    else:
        await default_thread_limiter().run(check_args, schema, args, field)


def check_args(schema: Mapping[str, Any] | None, args: Mapping[str, Any], field: str) -> None:
    """InvalidRequest naming each argument that does not fit `schema` (no schema: anything fits)."""
    if schema is None:
        return
    validator = Draft202012Validator(schema)
    try:  # the first few problems only: listing every one could take long on a large argument
        found = list(itertools.islice(validator.iter_errors(args), MAX_PROBLEMS))
    except (ArithmeticError, RecursionError, ValueError) as error:  # e.g. multipleOf on a huge integer
        raise InvalidRequest(
            field, f"cannot be checked against the arguments' schema ({type(error).__name__})"
        ) from None
    if not found:
        return
    errors = sorted(found, key=lambda e: (list(e.absolute_path), e.message))
    problems = [_problem(error, schema) for error in errors]
    details = [{"field": f"{field}.{name}" if name else field, "message": text} for name, text in problems]
    message = "; ".join(f"{name}: {text}" if name else text for name, text in problems)
    raise InvalidRequest(field, message, details=details)


def _problem(error: ValidationError, schema: Mapping[str, Any]) -> tuple[str, str]:
    """(the argument's path, what is wrong with it), in words a reviewer understands."""
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties" and not error.absolute_path:
        names = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(names)) if isinstance(error.instance, dict) else []
        return ", ".join(extra), f"not an argument of this action; it takes {', '.join(names) or 'none'}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        return missing, "is required"
    if error.validator == "type":
        wanted = error.validator_value
        kinds = " or ".join(wanted) if isinstance(wanted, list) else str(wanted)
        return path, f"must be of type {kinds}, not {_json_type(error.instance)} ({_short(error.instance)})"
    return path, error.message


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"
