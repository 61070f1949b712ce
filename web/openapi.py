"""The OpenAPI document of the JSON API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .runstore import VIEWS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Bad input", 401: "No or unknown credentials", 403: "Not allowed", 404: "Not found", 409: "Conflict"}
    return {str(code): _response(text[code], _ERROR) for code in codes}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}
_REQUEST = {"$ref": "#/components/schemas/ApprovalRequest"}
_DECISION = {"$ref": "#/components/schemas/Decision"}
_RUN = {"$ref": "#/components/schemas/Run"}
_TASK = {
    "type": "object",
    "required": ["task"],
    "properties": {
        "task": {"type": "string", "maxLength": 20_000},
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds the whole run may take, waits for people included (default: the server's)",
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "approvals", "version": "1", "description": "Human approval of AI agents' actions."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {
                            "status": {"type": "integer"},
                            "message": {"type": "string"},
                            "field": {"type": "string", "description": "The input at fault (400)"},
                            "errors": {
                                "type": "array",
                                "description": "One entry per input at fault, e.g. edited_args.amount (400)",
                                "items": {
                                    "type": "object",
                                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                                },
                            },
                        },
                    }
                },
            },
            "NewRequest": {
                "type": "object",
                "required": ["action"],
                "additionalProperties": False,
                "properties": {
                    "action": {"type": "string", "maxLength": 500},
                    "args": {"type": "object"},
                    "queue": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                    "timeout": {"type": "number", "exclusiveMinimum": 0},
                    "idempotency_key": {"type": "string", "maxLength": 200},
                    "context": {"type": "object"},
                    "agent_id": {"type": "string"},
                    "run_id": {"type": "string"},
                    "args_schema": {
                        "type": "object",
                        "description": "JSON Schema the args and a reviewer's edits must fit (no pattern, no $ref)",
                    },
                },
            },
            "ApprovalRequest": {
                "type": "object",
                "properties": {
                    name: {"type": kind}
                    for name, kind in {
                        "id": "string",
                        "queue": "string",
                        "action": "string",
                        "args": "object",
                        "status": "string",
                        "created_at": "number",
                        "expires_at": "number",
                        "agent_id": ["string", "null"],
                        "run_id": ["string", "null"],
                        "requested_by": ["string", "null"],
                        "decided_at": ["number", "null"],
                        "decided_by": ["string", "null"],
                        "reason": ["string", "null"],
                        "edited_args": ["object", "null"],
                        "idempotency_key": ["string", "null"],
                        "context": "object",
                        "args_schema": ["object", "null"],
                    }.items()
                },
            },
            "Decision": {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string"},
                    "status": {
                        "enum": ["approved", "rejected", "expired", "cancelled", "withdrawn"],
                        "description": "approved, rejected: reviewers' decisions; withdrawn: the asker stopped waiting",
                    },
                    "approved": {"type": "boolean"},
                    "decided_by": {"type": "string"},
                    "decided_at": {"type": "number"},
                    "reason": {"type": ["string", "null"]},
                    "args": {"type": "object", "description": "The arguments to run with (edited if edited)"},
                    "edited": {"type": "boolean"},
                },
            },
            "Run": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "task": {"type": "string"},
                    "profile": {"type": "string"},
                    "status": {"enum": ["queued", "running", "finished", "failed", "cancelled"]},
                    "state": {
                        "enum": ["queued", "running", "waiting", "finished", "failed", "cancelled"],
                        "description": "The status, with 'waiting' for a running run waiting for a person",
                    },
                    "waiting": {"type": "boolean"},
                    "submitted_by": {"type": ["string", "null"]},
                    "created_at": {"type": "number"},
                    "started_at": {"type": ["number", "null"]},
                    "finished_at": {"type": ["number", "null"]},
                    "attempts": {"type": "integer", "description": "Times a worker started it (more after take-overs)"},
                    "worker": {"type": ["string", "null"]},
                    "result": {"description": "The final answer, once finished"},
                    "error": {"type": ["string", "null"]},
                    "cancelled_by": {"type": ["string", "null"]},
                    "timeout": {"type": ["number", "null"], "description": "The run's time limit, waits included"},
                    "deadline": {"type": ["number", "null"]},
                },
            },
            "DecisionInput": {
                "type": "object",
                "required": ["outcome"],
                "properties": {
                    "outcome": {"enum": ["approve", "reject"]},
                    "reason": {"type": "string"},
                    "edited_args": {"type": "object"},
                },
            },
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/approvals": {
            "post": {
                "summary": "Ask for approval",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewRequest"}}},
                },
                "responses": {
                    "201": _response("Created (or the existing request for this idempotency key)", _REQUEST),
                    **_errors(400, 401, 409),
                },
            },
            "get": {
                "summary": "List requests",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"enum": ["pending", "decided"]}},
                    {"name": "queue", "in": "query", "schema": {"type": "string"}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                ],
                "responses": {"200": _response("A page of requests"), **_errors(400, 401)},
            },
        },
        "/api/v1/approvals/{id}": {
            "get": {
                "summary": "One request",
                "parameters": [_ID],
                "responses": {"200": _response("The request", _REQUEST), **_errors(401, 404)},
            },
        },
        "/api/v1/approvals/{id}/decision": {
            "post": {
                "summary": "Approve (optionally with edited arguments) or reject",
                "parameters": [_ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DecisionInput"}}},
                },
                "responses": {"200": _response("Decided", _DECISION), **_errors(400, 401, 403, 404, 409)},
            },
        },
        "/api/v1/approvals/{id}/cancel": {
            "post": {
                "summary": "Withdraw a request",
                "parameters": [_ID],
                "responses": {"200": _response("Cancelled", _DECISION), **_errors(401, 403, 404, 409)},
            },
        },
        "/api/v1/approvals/{id}/wait": {
            "get": {
                "summary": "Long-poll for the decision",
                "parameters": [_ID, {"name": "timeout", "in": "query", "schema": {"type": "number", "maximum": 60}}],
                "responses": {
                    "200": _response("Decided", _DECISION),
                    "202": _response("Still pending after timeout"),
                    **_errors(400, 401, 404),
                },
            },
        },
        "/api/v1/queues": {
            "get": {"summary": "Queue statistics", "responses": {"200": _response("Per queue figures"), **_errors(401)}}
        },
        "/run-agent": {
            "post": {
                "summary": "Run an agent on a task and answer with its result when it ends",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _TASK}}},
                "responses": {"200": _response("The run's result", {"type": "object"}), **_errors(400, 401)},
            }
        },
        "/api/v1/runs": {
            "post": {
                "summary": "Queue a run for the workers",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _TASK}}},
                "responses": {"202": _response("Queued", _RUN), **_errors(400, 401)},
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
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                ],
                "responses": {"200": _response("A page of runs"), **_errors(400, 401)},
            },
        },
        "/api/v1/runs/{id}": {
            "get": {
                "summary": "One run, with its steps and approval requests",
                "parameters": [_ID],
                "responses": {"200": _response("The run", _RUN), **_errors(401, 404)},
            }
        },
        "/api/v1/runs/{id}/events": {
            "get": {
                "summary": "The run's steps as server-sent events, until it ends",
                "description": "Events: step (id 'attempt.index'), run, restart, end. Send Last-Event-ID to resume.",
                "parameters": [_ID, {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "text/event-stream"}, **_errors(400, 401, 404)},
            }
        },
        "/api/v1/runs/{id}/cancel": {
            "post": {
                "summary": "Cancel a run and withdraw its pending approval requests",
                "parameters": [_ID],
                "responses": {"200": _response("Cancelled", _RUN), **_errors(401, 403, 404, 409)},
            }
        },
        "/api/v1/audit": {
            "get": {
                "summary": "Audit events, page by page",
                "parameters": [
                    {"name": "before", "in": "query", "schema": {"type": "string"}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                ],
                "responses": {"200": _response("Events and the next cursor"), **_errors(400, 401)},
            }
        },
    },
}


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
