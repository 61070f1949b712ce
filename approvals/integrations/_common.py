"""What the framework integrations share: asking for several calls at once, and paused runs kept in Redis.

A framework that pauses a run for approval (OpenAI Agents' interruptions, Pydantic AI's deferred tool
calls, LangGraph's interrupts) hands over a batch of calls. Each becomes a request whose idempotency
key is the run id and the call's own id, so asking again for the same paused run (a retry, or another
process resuming it) reattaches to the same requests, and a decision made meanwhile comes back at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..client import ApprovalClient
from ..models import Decision
from ..schema import safe_subset
from ..tool import default_client


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call a framework paused for approval."""

    call_id: str  # the framework's id for the call, stable across a pause and a resume
    action: str  # the tool's name
    args: Mapping[str, Any]
    schema: Mapping[str, Any] | None = None  # the tool's input schema: reviewers' edits must fit it
    details: Mapping[str, Any] = field(default_factory=dict)  # more context for reviewers
    queue: str | None = None  # this call's queue, if not the asker's
    timeout: float | None = None  # this call's deadline, if not the asker's


@dataclass(frozen=True, slots=True)
class Asker:
    """How a paused run asks: through which client, in which queue, with what deadline, as whom."""

    framework: str
    client: ApprovalClient | None = None
    queue: str | None = "default"
    timeout: float | None = None
    agent: str | None = None

    async def started(self) -> ApprovalClient:
        return self.client or await default_client()

    async def decide(
        self, run_id: str, calls: Sequence[Call], context: Mapping[str, Any] | None = None
    ) -> list[Decision]:
        """Ask for every call at once and wait for all the decisions (in the calls' order)."""
        client = await self.started()
        return list(await asyncio.gather(*(self._ask(client, run_id, call, context or {}) for call in calls)))

    async def submit(self, run_id: str, calls: Sequence[Call], context: Mapping[str, Any] | None = None) -> list[str]:
        """Make the requests (or find them again) without waiting: their ids, in the calls' order."""
        client = await self.started()
        return [(await client.create(**self._request(run_id, call, context or {}))).id for call in calls]

    async def _ask(self, client: ApprovalClient, run_id: str, call: Call, context: Mapping[str, Any]) -> Decision:
        return await client.request_approval(**self._request(run_id, call, context))

    def _request(self, run_id: str, call: Call, context: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "action": call.action,
            "args": dict(call.args),
            "queue": call.queue or self.queue,
            "timeout": self.timeout if call.timeout is None else call.timeout,
            "agent_id": self.agent,
            "run_id": run_id,
            "idempotency_key": f"{run_id}:{call.call_id}",
            "idempotency_scope": f"{self.framework}-run:{run_id}",  # the run's own keys: nobody else's collide
            "context": {"framework": self.framework, "agent": self.agent, "run_id": run_id, "call_id": call.call_id}
            | dict(context)
            | dict(call.details),
            "args_schema": safe_subset(dict(call.schema)) if call.schema else None,
        }

    async def save(self, run_id: str, state: str) -> None:
        """Keep a paused run's serialized state next to its requests, for as long as decided requests are kept."""
        client = await self.started()
        settings = client.settings
        await client.store.redis.set(
            _paused_key(settings.prefix, self.framework, run_id), state, ex=int(settings.retention)
        )

    async def load(self, run_id: str) -> str | None:
        client = await self.started()
        state: str | None = await client.store.redis.get(_paused_key(client.settings.prefix, self.framework, run_id))
        return state

    async def forget(self, run_id: str) -> None:
        client = await self.started()
        await client.store.redis.delete(_paused_key(client.settings.prefix, self.framework, run_id))


def _paused_key(prefix: str, framework: str, run_id: str) -> str:
    return f"{prefix}paused:{framework}:{run_id}"


def refusal(decision: Decision, action: str) -> str:
    """What the model reads when a call was not approved."""
    return (
        f"A person did not approve this {action} call ({decision.status.value}): {decision.reason or 'no reason given'}"
    )
