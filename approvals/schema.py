"""The arguments' schema: what a request's arguments, and a reviewer's edits of them, must look like.

A request may carry a JSON Schema of its arguments (the approval tools send their tool's inputs).
The store checks the arguments against it when the request is made and a reviewer's edited
arguments when they are approved, so an edit the action could not run with is refused up front,
with a message per field, and nothing is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from .errors import InvalidRequest

MAX_SCHEMA_BYTES = 16 * 1024
MAX_PROBLEMS = 10  # problems listed per refusal

# A safe subset: no regular expressions (`pattern` could make a check take forever) and no
# references (`$ref` could loop), so checking an edit is always quick whoever wrote the schema.
KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const",
        "title", "description", "default", "examples", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
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
    if value.get("type") != "object":
        raise InvalidRequest(field, 'must describe an object of named arguments ({"type": "object", ...})')
    _check_keywords(value, field)
    try:
        Draft202012Validator.check_schema(value)
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except SchemaError as error:
        raise InvalidRequest(field, f"is not a valid JSON Schema ({error.message})") from None
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidRequest(field, f"must be JSON-serialisable ({error})") from None
    if len(encoded.encode()) > MAX_SCHEMA_BYTES:
        raise InvalidRequest(field, f"must encode to at most {MAX_SCHEMA_BYTES} bytes of JSON")
    return encoded


def _check_keywords(schema: object, field: str, depth: int = 0) -> None:
    if isinstance(schema, bool):
        return
    if not isinstance(schema, Mapping) or depth > 16:
        raise InvalidRequest(field, "must be made of schema objects, at most 16 levels deep")
    if unknown := sorted(set(schema) - KEYWORDS):
        raise InvalidRequest(field, f"uses {unknown}; allowed keywords are {sorted(KEYWORDS)}")
    for keyword, part in schema.items():
        if keyword in _SUBSCHEMA:
            _check_keywords(part, field, depth + 1)
        elif keyword in _SUBSCHEMAS and isinstance(part, list):
            for item in part:
                _check_keywords(item, field, depth + 1)
        elif keyword == "properties" and isinstance(part, Mapping):
            for item in part.values():
                _check_keywords(item, field, depth + 1)


def check_args(schema: Mapping[str, Any] | None, args: Mapping[str, Any], field: str) -> None:
    """InvalidRequest naming each argument that does not fit `schema` (no schema: anything fits)."""
    if schema is None:
        return
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(args), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    problems = [_problem(error, schema) for error in errors[:MAX_PROBLEMS]]
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
