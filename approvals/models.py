"""The data of the approval core: requests, decisions, pages, queue statistics and audit events.

Each type converts to and from the flat string fields Redis holds; nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from .jsonvalues import decode_json_object

T = TypeVar("T")

# Fields of the request hash that make up a decision: the decide script publishes exactly these.
DECISION_FIELDS = ("id", "status", "decided_at", "decided_by", "reason", "args", "edited_args")


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"  # by a reviewer
    REJECTED = "rejected"  # by a reviewer
    EXPIRED = "expired"  # nobody decided before the deadline: a denial
    CANCELLED = "cancelled"  # by a person: the requester, an admin, or whoever cancelled the run
    WITHDRAWN = "withdrawn"  # by the system: whoever asked stopped waiting (cancelled, failed, superseded)

    @property
    def final(self) -> bool:
        return self is not Status.PENDING

    @property
    def by_reviewer(self) -> bool:
        """A decision a reviewer made: what decision rates and times to decide count."""
        return self in (Status.APPROVED, Status.REJECTED)


@dataclass(frozen=True, slots=True)
class Decision:
    """How a request left pending. `args` are the arguments to run with: the edited ones if edited."""

    request_id: str
    status: Status
    decided_by: str
    decided_at: float
    reason: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    edited: bool = False

    @property
    def approved(self) -> bool:
        return self.status is Status.APPROVED

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Decision:
        """From the request hash (or the published subset of it); the request must be decided."""
        edited = fields.get("edited_args")
        return cls(
            request_id=fields["id"],
            status=Status(fields["status"]),
            decided_by=fields.get("decided_by", ""),
            decided_at=float(fields.get("decided_at", 0.0)),
            reason=fields.get("reason") or None,
            args=decode_json_object(edited if edited else fields.get("args")),
            edited=bool(edited),
        )

    @classmethod
    def from_message(cls, payload: str) -> Decision:
        """From a wake-up message or script reply: `<id>\\n<JSON of DECISION_FIELDS>`."""
        _, _, body = payload.partition("\n")
        return cls.from_fields(json.loads(body))


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One request for approval, as stored. Times are Unix timestamps in seconds."""

    id: str
    queue: str
    action: str
    args: dict[str, Any]
    status: Status
    created_at: float
    expires_at: float
    agent_id: str | None = None
    run_id: str | None = None
    requested_by: str | None = None
    decided_at: float | None = None
    decided_by: str | None = None
    reason: str | None = None
    edited_args: dict[str, Any] | None = None
    idempotency_key: str | None = None
    idempotency_scope: str | None = None  # whose key it is: "run:<id>", or "by:<requester>"
    context: dict[str, Any] = field(default_factory=dict)
    args_schema: dict[str, Any] | None = None  # JSON Schema the arguments (and any edits) must meet

    @property
    def pending(self) -> bool:
        return self.status is Status.PENDING

    def decision(self) -> Decision | None:
        if self.pending or self.decided_at is None:
            return None
        return Decision(
            request_id=self.id,
            status=self.status,
            decided_by=self.decided_by or "",
            decided_at=self.decided_at,
            reason=self.reason,
            args=self.edited_args if self.edited_args is not None else self.args,
            edited=self.edited_args is not None,
        )

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> ApprovalRequest:
        edited = fields.get("edited_args")
        decided_at = fields.get("decided_at")
        return cls(
            id=fields["id"],
            queue=fields["queue"],
            action=fields["action"],
            args=decode_json_object(fields.get("args")),
            status=Status(fields["status"]),
            created_at=float(fields["created_at"]),
            expires_at=float(fields["expires_at"]),
            agent_id=fields.get("agent_id"),
            run_id=fields.get("run_id"),
            requested_by=fields.get("requested_by"),
            decided_at=float(decided_at) if decided_at else None,
            decided_by=fields.get("decided_by"),
            reason=fields.get("reason") or None,
            edited_args=decode_json_object(edited) if edited else None,
            idempotency_key=fields.get("idempotency_key"),
            idempotency_scope=fields.get("idempotency_scope"),
            context=decode_json_object(fields.get("context")),
            args_schema=decode_json_object(schema) if (schema := fields.get("args_schema")) else None,
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, with the total count of the whole listing."""

    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    depth: int
    oldest_created_at: float | None  # None when the queue is empty
    oldest_age: float  # seconds, 0.0 when the queue is empty


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit stream: who did what to which request, when, with which arguments."""

    event_id: str  # the stream entry id, usable as a cursor
    type: str  # created, approved, rejected, expired, cancelled, withdrawn; reminded, escalated, refused
    request_id: str
    queue: str
    action: str
    actor: str
    at: float
    args: dict[str, Any]
    edited_args: dict[str, Any] | None = None
    reason: str | None = None

    @classmethod
    def from_entry(cls, event_id: str, fields: Mapping[str, str]) -> AuditEvent:
        edited = fields.get("edited_args")
        return cls(
            event_id=event_id,
            type=fields["type"],
            request_id=fields["id"],
            queue=fields["queue"],
            action=fields["action"],
            actor=fields.get("actor", ""),
            at=float(fields["at"]),
            args=decode_json_object(fields.get("args")),
            edited_args=decode_json_object(edited) if edited else None,
            reason=fields.get("reason") or None,
        )


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None  # pass back as `before` (newest-first) or `after` (oldest-first)
