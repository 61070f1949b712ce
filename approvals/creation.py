"""What writing a new request takes: checking what is asked, and the CREATE script's keys and arguments.

`ApprovalStore.create` hands the building to its batcher, which runs it with everyone else's in
slices between round trips: a burst of asks costs the event loop a slice at a time, never all at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import schema
from . import validation as check
from .keys import Keys
from .models import Status
from .settings import Settings


@dataclass(slots=True)
class Ask:
    """What a caller asked for, checked once (on first use) and kept as the hash fields to store."""

    action: object
    args: Mapping[str, Any] | None
    queue: str | None
    timeout: float | None
    agent_id: str | None
    run_id: str | None
    requested_by: str | None
    idempotency_key: str | None
    idempotency_scope: str | None
    context: Mapping[str, Any] | None
    args_schema: Mapping[str, Any] | None
    _fields: dict[str, str | None] | None = None
    _lifetime: float = 0.0

    def fields(self, settings: Settings) -> tuple[dict[str, str | None], float]:
        """The hash fields and the lifetime in seconds; InvalidRequest (writing nothing) if anything is off."""
        if self._fields is None:
            key = self.idempotency_key
            scope = self.idempotency_scope or f"by:{self.requested_by or ''}"
            self._fields = {
                "action": check.action(self.action),
                "args": check.json_object({} if self.args is None else self.args, "args"),
                "queue": check.queue_name(settings.default_queue if self.queue is None else self.queue),
                "agent_id": check.optional_name(self.agent_id, "agent_id"),
                "run_id": check.optional_name(self.run_id, "run_id"),
                "requested_by": check.optional_name(self.requested_by, "requested_by"),
                "idempotency_key": check.optional_name(key, "idempotency_key"),
                "idempotency_scope": None if key is None else check.name(scope, "idempotency_scope"),
                "context": check.json_object({} if self.context is None else self.context, "context"),
                "args_schema": None if self.args_schema is None else schema.check_schema(self.args_schema),
            }
            timeout = settings.default_timeout if self.timeout is None else self.timeout
            self._lifetime = check.seconds(timeout, "timeout")
        return self._fields, self._lifetime


def create_call(
    keys: Keys, settings: Settings, request_id: str, ask: Ask, replaceable: str
) -> tuple[list[str], list[Any], dict[str, str]]:
    """(KEYS, ARGV, the hash as it will be stored) for the CREATE script (see scripts.py)."""
    fields, lifetime = ask.fields(settings)
    now = time.time()
    stored = {
        "id": request_id,
        "status": Status.PENDING.value,
        "created_at": repr(now),
        "expires_at": repr(now + lifetime),
        **{name: value for name, value in fields.items() if value is not None},
    }
    queue_name, run_id, key = stored["queue"], stored.get("run_id"), stored.get("idempotency_key")
    names = [
        keys.request(request_id),
        keys.pending(),
        keys.pending(queue_name),
        keys.expiry,
        keys.events,
        keys.queues,
        keys.counts,
    ]
    if key is not None:
        names.append(keys.idempotency(stored.get("idempotency_scope", ""), key))
    if run_id is not None:
        names.append(keys.run_requests(run_id))
    argv: list[Any] = [request_id, stored["created_at"], stored["expires_at"], settings.events_maxlen, queue_name]
    argv += [stored["action"], stored.get("requested_by", ""), stored["args"]]
    argv += ["" if key is None else replaceable, run_id or "", keys.runs_channel]
    argv += [math.ceil(lifetime + settings.retention)]
    argv += [part for pair in stored.items() for part in pair]
    return names, argv, stored
