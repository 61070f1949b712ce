"""The OpenAPI document of the JSON API, served at /api/v1/openapi.json.

Payload schemas are generated from the pydantic models and the types that check requests and build
responses (`web.schemas`), so the document cannot be looser or stricter than the server; the paths,
parameters and envelopes are written here.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from approvals.validation import MAX_OFFSET, MAX_PAGE, QUEUE_RE, STREAM_ID_RE

from ..runs.store import VIEWS
from . import schemas

DOCUMENT_KEY = web.AppKey("openapi_document", dict)

_ERROR = {"$ref": "#/components/schemas/Error"}
_REF = "#/components/schemas/{model}"


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad input (the error names the field, and lists each problem)",
        401: "No or unknown credentials",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict",
        413: "Body too large",
    }
    return {str(code): _response(text[code], _ERROR) for code in codes}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _body(name: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _components() -> dict[str, Any]:
    """Every payload's schema, generated from the models and types that check and build them."""
    adapters: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        ("NewRequest", "validation", TypeAdapter(schemas.NewRequest)),
        ("DecisionInput", "validation", TypeAdapter(schemas.DecisionInput)),
        ("CancelInput", "validation", TypeAdapter(schemas.CancelInput)),
        ("NewRun", "validation", TypeAdapter(schemas.NewRun)),
        ("ApprovalRequest", "serialization", schemas.REQUEST),
        ("Decision", "serialization", schemas.DECISION),
        ("AuditEvent", "serialization", schemas.AUDIT_EVENT),
        ("Run", "serialization", schemas.RUN),
        ("QueueFigures", "serialization", TypeAdapter(schemas.QueueFigures)),
        ("RunApproval", "serialization", TypeAdapter(schemas.RunApproval)),
        ("RunAgentResult", "serialization", TypeAdapter(schemas.RunAgentResult)),
    ]
    keyed, definitions = TypeAdapter.json_schemas(adapters, ref_template=_REF)
    components: dict[str, Any] = dict(definitions.get("$defs", {}))
    for name, mode, _ in adapters:
        schema = keyed[(name, mode)]
        if schema.get("$ref") != _REF.format(model=name):  # not a class of that name: an annotated union
            components[name] = schema
    _require_all(components["ApprovalRequest"])
    _require_all(components["Run"])
    decision = components["Decision"]
    _require_all(decision)
    decision["properties"]["approved"] = {"type": "boolean"}
    decision["required"].append("approved")
    components["Run"]["properties"]["state"] = {
        "enum": ["queued", "running", "waiting", "finished", "failed", "cancelled"],
        "description": "The status, with 'waiting' for a running run waiting for a person",
    }
    components["Run"]["required"].append("state")
    components.update(_handwritten())
    return components


def _require_all(schema: dict[str, Any]) -> None:
    """Responses always carry every field (null where empty)."""
    schema["required"] = list(schema["properties"])


def _handwritten() -> dict[str, Any]:
    """The envelopes around the generated payloads."""
    problem = {
        "type": "object",
        "required": ["field", "message"],
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["status", "message"],
                    "properties": {
                        "status": {"type": "integer"},
                        "message": {"type": "string"},
                        "field": {"type": "string", "description": "The input at fault (400)"},
                        "errors": {"type": "array", "items": problem, "description": "Each problem (400)"},
                        "decision": {**_ref("Decision"), "description": "The decision that stands (409)"},
                        "request_id": {"type": "string", "description": "The request the key names (409)"},
                    },
                }
            },
        },
        "RequestPage": _page("items", "ApprovalRequest"),
        "RunPage": _page("runs", "Run"),
        "RunDetail": {
            "allOf": [
                _ref("Run"),
                {
                    "type": "object",
                    "required": ["steps", "approvals", "why_waiting"],
                    "properties": {
                        "steps": {"type": "array", "items": {"type": "object"}},
                        "approvals": {"type": "array", "items": _ref("RunApproval")},
                        "why_waiting": {
                            "type": ["string", "null"],
                            "description": "Why a queued run has not started, when nothing will start it (no worker)",
                        },
                    },
                },
            ]
        },
        "Pending": {
            "type": "object",
            "required": ["status", "request"],
            "properties": {"status": {"const": "pending"}, "request": _ref("ApprovalRequest")},
        },
        "Queues": {
            "type": "object",
            "required": ["queues"],
            "properties": {"queues": {"type": "array", "items": _ref("QueueFigures")}},
        },
        "AuditPage": {
            "type": "object",
            "required": ["events", "next_cursor"],
            "properties": {
                "events": {"type": "array", "items": _ref("AuditEvent")},
                "next_cursor": {"type": ["string", "null"], "description": "Pass back as before (or after)"},
            },
        },
    }


def _page(field: str, item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [field, "total", "offset", "limit"],
        "properties": {
            field: {"type": "array", "items": _ref(item)},
            "total": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer", "minimum": 1},
        },
    }


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
_OFFSET = {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}}
_STREAM_ID = {"type": "string", "pattern": f"^{STREAM_ID_RE.pattern}$"}


def document(max_wait: float) -> dict[str, Any]:
    """The document for a server whose long polls last at most `max_wait` seconds."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "approvals", "version": "1", "description": "Human approval of AI agents' actions."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": _components()},
        "security": [{"bearer": []}],
        "paths": _paths(max_wait),
    }


def _paths(max_wait: float) -> dict[str, Any]:
    limit = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}}
    return {
        "/api/v1/approvals": {
            "post": {
                "summary": "Ask for approval",
                "requestBody": _body("NewRequest"),
                "responses": {
                    "201": _response(
                        "Created (or the existing request for this idempotency key)", _ref("ApprovalRequest")
                    ),
                    **_errors(400, 401, 409, 413),
                },
            },
            "get": {
                "summary": "List requests: pending (oldest first) or every ending (newest first)",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": ["pending", "decided"]}},
                    {"name": "queue", "in": "query", "schema": {"type": "string", "pattern": f"^{QUEUE_RE.pattern}$"}},
                    _OFFSET,
                    limit,
                ],
                "responses": {"200": _response("A page of requests", _ref("RequestPage")), **_errors(400, 401)},
            },
        },
        "/api/v1/approvals/{id}": {
            "get": {
                "summary": "One request",
                "parameters": [_ID],
                "responses": {"200": _response("The request", _ref("ApprovalRequest")), **_errors(401, 404)},
            },
        },
        "/api/v1/approvals/{id}/decision": {
            "post": {
                "summary": "Approve (optionally with edited arguments) or reject (with a reason)",
                "parameters": [_ID],
                "requestBody": _body("DecisionInput"),
                "responses": {
                    "200": _response("Decided", _ref("Decision")),
                    **_errors(400, 401, 403, 404, 409, 413),
                },
            },
        },
        "/api/v1/approvals/{id}/cancel": {
            "post": {
                "summary": "Cancel a request (its requester or an admin)",
                "parameters": [_ID],
                "requestBody": _body("CancelInput", required=False),
                "responses": {"200": _response("Cancelled", _ref("Decision")), **_errors(400, 401, 403, 404, 409)},
            },
        },
        "/api/v1/approvals/{id}/wait": {
            "get": {
                "summary": "Long-poll for the decision",
                "parameters": [
                    _ID,
                    {
                        "name": "timeout",
                        "in": "query",
                        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": max_wait},
                        "description": "Seconds to wait (default 30, or the limit if lower)",
                    },
                ],
                "responses": {
                    "200": _response("Decided", _ref("Decision")),
                    "202": _response("Still pending after the timeout", _ref("Pending")),
                    **_errors(400, 401, 404),
                },
            },
        },
        "/api/v1/queues": {
            "get": {
                "summary": "Queue statistics",
                "responses": {"200": _response("Per queue figures", _ref("Queues")), **_errors(401)},
            }
        },
        "/api/v1/audit": {
            "get": {
                "summary": "Audit events, page by page",
                "parameters": [
                    {"name": "before", "in": "query", "schema": _STREAM_ID},
                    {"name": "after", "in": "query", "schema": _STREAM_ID},
                    limit,
                ],
                "responses": {"200": _response("Events and the next cursor", _ref("AuditPage")), **_errors(400, 401)},
            }
        },
        "/run-agent": {
            "post": {
                "summary": "Run an agent on a task and answer with its result when it ends",
                "requestBody": _body("NewRun"),
                "responses": {"200": _response("How the run ended", _ref("RunAgentResult")), **_errors(400, 401, 413)},
            }
        },
        "/api/v1/runs": {
            "post": {
                "summary": "Queue a run for the workers",
                "requestBody": _body("NewRun"),
                "responses": {"202": _response("Queued", _ref("Run")), **_errors(400, 401, 413)},
            },
            "get": {
                "summary": "List runs, newest first",
                "parameters": [
                    {
                        "name": "state",
                        "in": "query",
                        "schema": {"enum": list(VIEWS)},
                        "description": "active: queued or running; waiting: running and waiting for a person",
                    },
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 100_000}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                ],
                "responses": {"200": _response("A page of runs", _ref("RunPage")), **_errors(400, 401)},
            },
        },
        "/api/v1/runs/{id}": {
            "get": {
                "summary": "One run, with its steps and approval requests",
                "parameters": [_ID],
                "responses": {"200": _response("The run", _ref("RunDetail")), **_errors(401, 404)},
            }
        },
        "/api/v1/runs/{id}/events": {
            "get": {
                "summary": "The run's steps as server-sent events, until it ends",
                "description": "Events: step (id 'attempt.index'), run, restart, end. Send Last-Event-ID to resume.",
                "parameters": [
                    _ID,
                    {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string", "pattern": r"^\d+\.-?\d+$"}},
                ],
                "responses": {
                    "200": {"description": "Server-sent events", "content": {"text/event-stream": {}}},
                    **_errors(400, 401, 404),
                },
            }
        },
        "/api/v1/runs/{id}/cancel": {
            "post": {
                "summary": "Cancel a run and withdraw its pending approval requests",
                "parameters": [_ID],
                "responses": {"200": _response("Cancelled", _ref("Run")), **_errors(401, 403, 404, 409)},
            }
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT_KEY])
