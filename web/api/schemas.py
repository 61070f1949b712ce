"""The JSON API's payloads, each defined once: the pydantic models below check what comes in (with the
approval core's own checks and messages) and are what the OpenAPI document is generated from; the
responses are built from the same types the document describes.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema

from approvals import ApprovalRequest, AuditEvent, Decision, InvalidRequest
from approvals import validation as check
from approvals.schema import KEYWORDS as SCHEMA_KEYWORDS
from approvals.schema import MAX_SCHEMA_BYTES

from ..runs.store import MAX_TASK, Run, check_task

# What the patterns can say of the core's checks on text: no control characters; in names and actions no
# invisible or text-direction ones either (the core also refuses those beyond U+FFFF); names neither
# start nor end with white space; an action and a rejection's reason are more than white space.
_CF = r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"  # noqa: E501
_PLAIN = rf"[^\u0000-\u001f\u007f{_CF}]"
_EDGE = rf"[^\s\u0000-\u001f\u007f{_CF}]"
_NAME_PATTERN = rf"^{_EDGE}(?:{_PLAIN}*{_EDGE})?$"
_ACTION_PATTERN = rf"^{_PLAIN}*{_EDGE}{_PLAIN}*$"
_REASON = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"
_NAME_DOC = {"type": "string", "minLength": 1, "maxLength": check.MAX_NAME, "pattern": _NAME_PATTERN}
_JSON_NOTE = (
    f"A JSON object of at most {check.MAX_JSON_BYTES // 1024} KB, nesting objects and arrays at most "
    f"{check.MAX_DEPTH} levels deep and holding at most {check.MAX_VALUES:,} values"
)

Action = Annotated[
    str,
    AfterValidator(check.action),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": check.MAX_ACTION, "pattern": _ACTION_PATTERN},
        mode="validation",
    ),
]
Name = Annotated[str, AfterValidator(lambda v: check.name(v, "name")), WithJsonSchema(_NAME_DOC, mode="validation")]
Queue = Annotated[
    str,
    AfterValidator(check.queue_name),
    WithJsonSchema({"type": "string", "pattern": f"^{check.QUEUE_RE.pattern}$"}, mode="validation"),
]
Seconds = Annotated[
    float,
    AfterValidator(lambda v: check.seconds(v, "timeout")),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": check.MAX_TIMEOUT}, mode="validation"),
]
Reason = Annotated[
    str,
    AfterValidator(check.reason),
    WithJsonSchema({"type": "string", "maxLength": check.MAX_REASON, "pattern": f"^{_REASON}*$"}, mode="validation"),
]
RequiredReason = Annotated[
    str,
    AfterValidator(check.reason),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": check.MAX_REASON, "pattern": rf"^{_REASON}*[^\s]{_REASON}*$"},
        mode="validation",
    ),
]
JsonObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "description": _JSON_NOTE}, mode="validation"),
]
ArgsSchema = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"const": "object"}},
            "propertyNames": {"enum": sorted(SCHEMA_KEYWORDS)},
            "description": f"A JSON Schema (at most {MAX_SCHEMA_BYTES // 1024} KB) the args and a reviewer's edits "
            "must fit: type object; no pattern, $ref or uniqueItems",
        },
        mode="validation",
    ),
]
Task = Annotated[
    str,
    AfterValidator(check_task),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_TASK}, mode="validation"),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewRequest(_Body):
    """Ask for approval."""

    action: Action
    args: JsonObject = Field(default_factory=dict)
    queue: Queue | None = None
    timeout: Seconds | None = Field(default=None, description="Seconds reviewers have; then it expires (a denial)")
    idempotency_key: Name | None = Field(default=None, description="Asking again with it gives the same request")
    context: JsonObject = Field(default_factory=dict)
    agent_id: Name | None = None
    run_id: Name | None = None
    args_schema: ArgsSchema | None = None


class Approve(_Body):
    outcome: Literal["approve"]
    reason: Reason | None = None
    edited_args: JsonObject | None = Field(default=None, description="Approve these arguments instead")


class Reject(_Body):
    outcome: Literal["reject"]
    reason: RequiredReason = Field(description="Required: the agent is told it")


DecisionInput = Annotated[Approve | Reject, Field(discriminator="outcome")]


class CancelInput(_Body):
    reason: Reason | None = None


class NewRun(_Body):
    task: Task
    timeout: Seconds | None = Field(default=None, description="Seconds the whole run may take, waits included")


# -- responses ---------------------------------------------------------------------------------------


class QueueFigures(BaseModel):
    queue: str
    depth: int
    oldest_age: float
    decisions_per_minute: float = Field(description="Reviewers' decisions, over the last ten minutes")
    time_to_decision_p50: float | None
    time_to_decision_p95: float | None
    expired_last_hour: int
    cancelled_last_hour: int
    withdrawn_last_hour: int


class RunApproval(BaseModel):
    id: str
    action: str
    queue: str
    status: str
    created_at: float
    decided_by: str | None
    reason: str | None


class RunAgentResult(BaseModel):
    result: Any = Field(description="The final answer (or what the model said when it had none)")
    state: Literal["success", "max_steps_error", "run_timeout"]


REQUEST = TypeAdapter(ApprovalRequest)
DECISION = TypeAdapter(Decision)
AUDIT_EVENT = TypeAdapter(AuditEvent)
RUN = TypeAdapter(Run)


def request_json(approval: ApprovalRequest) -> dict[str, Any]:
    data: dict[str, Any] = REQUEST.dump_python(approval, mode="json")
    return data


def decision_json(decision: Decision) -> dict[str, Any]:
    data: dict[str, Any] = DECISION.dump_python(decision, mode="json")
    return data | {"approved": decision.approved}


def event_json(event: AuditEvent) -> dict[str, Any]:
    data: dict[str, Any] = AUDIT_EVENT.dump_python(event, mode="json")
    return data


# -- reading bodies --------------------------------------------------------------------------------

_KINDS = {
    "string_type": "a string",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "float_type": "a number",
    "int_type": "a whole number",
    "bool_type": "true or false",
}
_TYPE_HINTS = {
    "action": "action: must be a non-empty string describing what the agent wants to do",
    "task": 'task: missing or empty; send {"task": "what the agent should do"}',
}
_MISSING_HINTS = {
    "action": "action is required: say what the agent wants to do",
    "task": 'task: missing or empty; send {"task": "what the agent should do"}',
    "outcome": "outcome must be approve or reject (approve may carry edited_args)",
}


@functools.cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)  # building one costs milliseconds: once per model


def parse(model: Any, body: dict[str, Any]) -> Any:
    """`body` checked by `model` (a model, or an annotated union of them); a 400 in the API's error shape
    (message, field, and one entry per problem) if it does not fit."""
    try:
        return _adapter(model).validate_python(body, strict=True)
    except ValidationError as error:
        raise bad_request(_problems(error, _fields(model))) from None


def _fields(model: Any) -> list[str]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    members = getattr(model, "__metadata__", None) and model.__origin__.__args__
    return sorted({name for member in members or () for name in member.model_fields})


class BadInput(web.HTTPBadRequest):
    """A 400 that names the field at fault and lists each problem (the error middleware shows them)."""

    def __init__(self, problems: list[dict[str, str]], message: str | None = None, field: str | None = None) -> None:
        super().__init__(text=message or "; ".join(p["message"] for p in problems))
        self.extra = {"field": field or problems[0]["field"], "errors": problems}


def bad_request(problems: list[dict[str, str]]) -> BadInput:
    return BadInput(problems)


def invalid(error: InvalidRequest) -> BadInput:
    """A refusal by the approval core, in the same shape: its message, and one entry per problem."""
    return BadInput(list(error.details), str(error), error.field)


def _problems(error: ValidationError, allowed: list[str]) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []
    extra = [str(e["loc"][-1]) for e in error.errors() if e["type"] == "extra_forbidden"]
    if extra:
        problems.append({"field": extra[0], "message": f"Unknown field(s) {sorted(extra)}; allowed: {allowed}"})
    for item in error.errors():
        loc = [str(p) for p in item["loc"] if p not in ("approve", "reject")]
        field = ".".join(loc) or "body"
        cause = item.get("ctx", {}).get("error")
        if item["type"] == "extra_forbidden":
            continue
        if isinstance(cause, InvalidRequest):
            if len(cause.details) == 1:  # the core's message, about the field as the body names it
                problems.append({"field": field, "message": f"{field}: {cause.details[0]['message']}"})
            else:
                problems += cause.details
        elif item["type"] == "missing":
            problems.append({"field": field, "message": _MISSING_HINTS.get(field, f"{field} is required")})
        elif item["type"] in _KINDS:
            hint = _TYPE_HINTS.get(field, f"{field}: must be {_KINDS[item['type']]}")
            problems.append({"field": field, "message": hint})
        elif item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            problems.append({"field": "outcome", "message": _MISSING_HINTS["outcome"]})
        else:
            problems.append({"field": field, "message": f"{field}: {item['msg']}"})
    return problems
