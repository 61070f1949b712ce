"""Errors of the approval core: one base class, specific subclasses that carry their data.

The web layer maps these to HTTP statuses; nothing here knows about HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Decision


class ApprovalError(Exception):
    """Base class of every error the approval core raises on purpose."""


class InvalidSettings(ApprovalError, ValueError):
    """A setting (or the environment variable behind it) has a value we cannot use."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


class InvalidRequest(ApprovalError, ValueError):
    """Input to a public function was refused; nothing was written.

    `details` lists the problems field by field (`{"field": "edited_args.amount", "message": ...}`)
    when there are several, or they are inside `field`.
    """

    def __init__(self, field: str, message: str, *, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.details = details or [{"field": field, "message": message}]


class RequestNotFound(ApprovalError, LookupError):
    """No approval request with this id (it never existed, or retention removed it)."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"no approval request with id {request_id!r}")
        self.request_id = request_id


class AlreadyDecided(ApprovalError):
    """Someone else decided first (or the request expired); `decision` is the one that stands."""

    def __init__(self, decision: Decision) -> None:
        if decision.status.value == "withdrawn":
            message = (
                f"request {decision.request_id} was withdrawn at {decision.decided_at:.3f} ({decision.reason}); "
                "nobody waits for it any more, so it cannot be decided"
            )
        else:
            message = (
                f"request {decision.request_id} was already {decision.status.value}"
                f" by {decision.decided_by} at {decision.decided_at:.3f}"
            )
        super().__init__(message)
        self.decision = decision


class SelfDecisionForbidden(ApprovalError):
    """A reviewer tried to decide a request they made themselves."""

    def __init__(self, request_id: str, reviewer: str) -> None:
        super().__init__(f"{reviewer!r} made request {request_id} and so cannot decide it; ask another reviewer")
        self.request_id = request_id
        self.reviewer = reviewer


class IdempotencyConflict(ApprovalError):
    """An idempotency key was reused for a different action or different arguments."""

    def __init__(self, key: str, request_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} already belongs to request {request_id} with a different action, "
            "queue or arguments; use a new key for a new request"
        )
        self.key = key
        self.request_id = request_id


class WaitTimeout(ApprovalError, TimeoutError):
    """`wait(..., timeout=...)` gave up before a decision; the request itself is still pending."""

    def __init__(self, request_id: str, timeout: float) -> None:
        super().__init__(f"no decision on request {request_id} within {timeout:g} s; it is still pending")
        self.request_id = request_id
        self.timeout = timeout


class StoreUnavailable(ApprovalError, ConnectionError):
    """Redis could not be reached when the client started."""

    def __init__(self, url: str, cause: BaseException) -> None:
        super().__init__(
            f"cannot reach Redis at {url} ({cause}); start it, fix REDIS_URL, or unset REDIS_URL to use the "
            "embedded store"
        )
        self.url = url


class ClientClosed(ApprovalError, RuntimeError):
    """The client was used before `start()` / `async with`, or after `aclose()`."""

    def __init__(self) -> None:
        super().__init__("the ApprovalClient is not running; use it inside 'async with ApprovalClient(...)'")
