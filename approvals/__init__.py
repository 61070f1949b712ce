"""Human-in-the-loop approvals for AI agents: requests in Redis, decided once, awaited as coroutines."""

from .client import ApprovalClient
from .errors import (
    AlreadyDecided,
    ApprovalError,
    ClientClosed,
    IdempotencyConflict,
    InvalidRequest,
    InvalidSettings,
    RequestNotFound,
    SelfDecisionForbidden,
    StoreUnavailable,
    WaitTimeout,
)
from .expiry import ExpirySweeper
from .models import ApprovalRequest, AuditEvent, AuditPage, Decision, Page, QueueStats, Status
from .settings import Settings
from .store import ApprovalStore
from .waiting import DecisionWaiter

__all__ = [
    "AlreadyDecided",
    "ApprovalClient",
    "ApprovalError",
    "ApprovalRequest",
    "ApprovalStore",
    "AuditEvent",
    "AuditPage",
    "ClientClosed",
    "Decision",
    "DecisionWaiter",
    "ExpirySweeper",
    "IdempotencyConflict",
    "InvalidRequest",
    "InvalidSettings",
    "Page",
    "QueueStats",
    "RequestNotFound",
    "SelfDecisionForbidden",
    "Settings",
    "Status",
    "StoreUnavailable",
    "WaitTimeout",
]
