"""Approvals inside agents: `HumanApprovalTool`, and `require_approval` to guard any tool.

Both ask through an `ApprovalClient` and await the decision as a coroutine, outside the code's
budget. Inside an agent run the idempotency key is `run:step:call`, so a re-run of the same run
attaches to the request it already made instead of asking twice; reviewers see the agent, run, task
and recent steps as context, and the request expires no later than the run's own time limit.
Reviewers' edits must fit the tool's inputs (the request carries them as a JSON Schema).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar

from agent_runtime import Tool
from agent_runtime.context import get_run_context

from .asking import current_holder
from .client import ApprovalClient
from .models import Decision
from .schema import safe_subset

MIN_TIMEOUT = 0.01  # seconds: a request made as its run's time runs out still gets a valid deadline
# A run's requests expire this long after the run's own time limit: the run stops first and withdraws
# them (saying why), rather than racing its requests' expiry at the same instant.
RUN_END_GRACE = 1.0

_default_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ApprovalClient] = weakref.WeakKeyDictionary()
_default_client_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


async def default_client() -> ApprovalClient:
    """The process's shared client for this event loop, from the environment, started on first use.

    One per loop keeps one Pub/Sub connection for every waiting agent; close it with
    `close_default_client()` before the loop ends.
    """
    loop = asyncio.get_running_loop()
    lock = _default_client_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        client = _default_clients.get(loop)
        if client is None:
            client = ApprovalClient(requested_by="agent")
            await client.start()
            _default_clients[loop] = client
        return client


async def close_default_client() -> None:
    client = _default_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def request_context() -> tuple[dict[str, Any], dict[str, Any]]:
    """(create() keyword arguments, context) for a request made from inside an agent run."""
    run = get_run_context()
    if run is None:
        return {}, {}
    context = {
        "agent": run.agent_name,
        "run_id": run.run_id,
        "task": run.task,
        "step": run.step_number,
        "recent_steps": run.recent_steps(),
    }
    identity = {
        "agent_id": run.agent_name,
        "run_id": run.run_id,
        "idempotency_key": run.next_call_key(),
        "idempotency_scope": f"run:{run.run_id}",  # the run's own keys: nobody else's can collide
        "supersede": True,  # a re-run that took another path at this step replaces what it asked before
    }
    holder = current_holder.get()
    if holder is not None and holder.requested_by:
        identity["requested_by"] = holder.requested_by  # the person the run acts for: four eyes hold
    return identity, context


def args_schema(tool: Tool) -> dict[str, Any]:
    """The tool's inputs as the JSON Schema its arguments, and a reviewer's edits of them, must meet."""
    return inputs_schema(tool.inputs)


def inputs_schema(inputs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Tool inputs in the smolagents format as a JSON Schema (see `args_schema`)."""
    properties: dict[str, Any] = {}
    for name, spec in inputs.items():
        kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        prop: dict[str, Any] = {k: v for k, v in spec.items() if k in ("description", "enum", "items")}
        if not {"any", "image", "audio"} & set(kinds):
            kinds = [*kinds, "null"] if spec.get("nullable") and "null" not in kinds else kinds
            prop["type"] = kinds[0] if len(kinds) == 1 else kinds
        if "enum" in prop and spec.get("nullable"):
            prop["enum"] = [*prop["enum"], None]
        properties[name] = prop
    required = [name for name, spec in inputs.items() if not spec.get("nullable")]
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return safe_subset(schema)  # a tool may describe items with more than the store checks


class _Asks:
    """What both approval tools share: which client, queue and deadline, and how to ask."""

    def __init__(self, client: ApprovalClient | None, queue: str | None, timeout: float | None) -> None:
        self._client = client
        self.queue = queue
        self.timeout = timeout

    async def client(self) -> ApprovalClient:
        return self._client or await default_client()

    async def ask(self, action: str, args: Mapping[str, Any], schema: dict[str, Any]) -> Decision:
        client = await self.client()
        identity, context = request_context()
        decision = await client.request_approval(
            action,
            args,
            queue=self.queue,
            timeout=self._timeout(client),
            context=context,
            args_schema=schema,
            **identity,
        )
        holder = current_holder.get()
        if holder is not None and holder.fence is not None:
            await holder.fence()
        return decision

    def _timeout(self, client: ApprovalClient) -> float:
        """The tool's deadline for reviewers, cut short to the run's own time limit, if that is sooner."""
        timeout = client.settings.default_timeout if self.timeout is None else self.timeout
        run = get_run_context()
        run_ends = run.expires_at() if run is not None else None
        if run_ends is not None:
            timeout = max(MIN_TIMEOUT, min(timeout, run_ends - time.time() + RUN_END_GRACE))
        return timeout


class HumanApprovalTool(Tool):
    """Ask a human to approve an action before the agent does it."""

    name = "human_approval"
    description = (
        "Ask a human reviewer to approve an action before you take it. Describe the exact action. "
        "Returns 'approved: <action>', 'approved with changes: <action as edited>' (do the edited action), "
        "or 'rejected: <reason>' (do not take the action)."
    )
    inputs: ClassVar[dict[str, dict[str, Any]]] = {
        "action": {"type": "string", "description": "The exact action you want to take, with its details"}
    }
    output_type = "string"

    def __init__(
        self, client: ApprovalClient | None = None, *, queue: str | None = "default", timeout: float | None = None
    ) -> None:
        super().__init__()
        self._asks = _Asks(client, queue, timeout)

    async def forward(self, action: str) -> str:
        decision = await self._asks.ask(action, {"action": action}, args_schema(self))
        return said_to_model(decision, action)


def said_to_model(decision: Decision, action: str) -> str:
    """What an agent that asked in its own words reads back (every framework's HumanApprovalTool)."""
    if not decision.approved:
        return f"rejected: {decision.reason or decision.status.value}"
    if decision.edited:
        return f"approved with changes: {decision.args.get('action', action)}"
    return f"approved: {action}"


class _ApprovalRequired(Tool):
    """A tool whose every call is first approved by a human, with the exact arguments."""

    wrapped: ClassVar[Tool]

    def __init__(self, asks: _Asks) -> None:
        super().__init__()
        self._asks = asks

    async def forward(self, **arguments: Any) -> Any:
        decision = await self._asks.ask(self.name, arguments, args_schema(self.wrapped))
        if not decision.approved:
            # A plain observation, not an error: an error would make the model retry the same call.
            status = decision.status.value
            return f"The reviewer did not approve this {self.name} call ({status}): {decision.reason}"
        # One approval, one call: a run re-run after its worker died gets the noted result back.
        store = (await self._asks.client()).store
        ran, outcome = await store.outcome(decision.request_id)
        if ran:
            return outcome
        result = await self.wrapped.acall(**decision.args)
        await store.record_outcome(decision.request_id, result)
        return result


def require_approval(
    tool: Tool, *, client: ApprovalClient | None = None, queue: str | None = "default", timeout: float | None = None
) -> Tool:
    """`tool`, changed so that each call becomes an approval request carrying its exact arguments.

    On approval the tool runs with the approved arguments (the reviewer's edits, if any) and its
    result is noted with the request, so a re-run of the same run (same idempotency key) gets that
    result back instead of running the tool again. On rejection or expiry the model gets a plain
    observation with the reason.
    """
    attributes = {
        "name": tool.name,
        "description": f"{tool.description} (Each call waits for a human reviewer's approval.)",
        "inputs": tool.inputs,
        "output_type": tool.output_type,
        "wrapped": tool,
    }
    guarded: type[_ApprovalRequired] = type(f"{type(tool).__name__}WithApproval", (_ApprovalRequired,), attributes)
    return guarded(_Asks(client, queue, timeout))
