"""Pydantic AI agents whose deferred tool calls wait for a person: each call needing approval becomes a
request, and the decisions become the `DeferredToolResults` of the next run.

    from pydantic_ai import Agent, DeferredToolRequests
    from approvals.integrations.pydantic_ai import run_with_approvals

    agent = Agent("openai:gpt-4o", output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def delete_file(path: str) -> str: ...

    result = await run_with_approvals(agent, "Clean up /tmp", run_id="cleanup-42", queue="files")

A run that pauses keeps its message history in Redis next to its requests, so `resume_with_approvals`
can finish it in another process after a restart; asking again for the same run reattaches to the same
requests (idempotency key: run id and tool call id).
"""

from __future__ import annotations

import uuid
from typing import Any

from ..client import ApprovalClient
from ..models import Decision
from . import require
from ._common import Asker, Call, refusal

require("pydantic_ai", "pydantic-ai")
from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults, ToolApproved, ToolDenied  # noqa: E402
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter  # noqa: E402

__all__ = ["decide_deferred", "resume_with_approvals", "run_with_approvals"]

FRAMEWORK = "pydantic-ai"


def _asker(agent: Agent[Any, Any], client: ApprovalClient | None, queue: str | None, timeout: float | None) -> Asker:
    return Asker(FRAMEWORK, client, queue, timeout, agent.name or "pydantic-ai-agent")


async def decide_deferred(
    requests: DeferredToolRequests,
    *,
    run_id: str,
    agent: Agent[Any, Any] | None = None,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
) -> DeferredToolResults:
    """Ask a person about every call in `requests.approvals` and wait: the results for the next run.

    Approved calls run with the reviewer's edits (`ToolApproved(override_args=...)`); the others get
    `ToolDenied` with the reason, which the model reads as the tool's result.
    """
    if requests.calls:
        names = ", ".join(sorted({call.tool_name for call in requests.calls}))
        raise ValueError(
            f"these deferred calls wait for an external result, not an approval: {names}; "
            "run them yourself and pass their results in DeferredToolResults(calls=...)"
        )
    asker = Asker(FRAMEWORK, client, queue, timeout, (agent.name if agent else None) or "pydantic-ai-agent")
    calls = [
        Call(
            call.tool_call_id,
            call.tool_name,
            call.args_as_dict(),
            schema=_schema(agent, call.tool_name),
            details={"metadata": requests.metadata[call.tool_call_id]}
            if call.tool_call_id in requests.metadata
            else {},
        )
        for call in requests.approvals
    ]
    decisions = await asker.decide(run_id, calls)
    return DeferredToolResults(
        approvals={c.call_id: _result(c.action, d) for c, d in zip(calls, decisions, strict=True)}
    )


def _result(action: str, decision: Decision) -> bool | ToolApproved | ToolDenied:
    if not decision.approved:
        return ToolDenied(refusal(decision, action))
    return ToolApproved(override_args=dict(decision.args)) if decision.edited else True


def _schema(agent: Agent[Any, Any] | None, tool: str) -> dict[str, Any] | None:
    toolset = getattr(agent, "_function_toolset", None) if agent is not None else None
    found = getattr(toolset, "tools", {}).get(tool) if toolset is not None else None
    schema = getattr(getattr(found, "function_schema", None), "json_schema", None)
    return schema if isinstance(schema, dict) else None


async def run_with_approvals(
    agent: Agent[Any, Any],
    user_prompt: str | None = None,
    *,
    run_id: str | None = None,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
    message_history: list[ModelMessage] | None = None,
    **run_kwargs: Any,
) -> Any:
    """`agent.run(...)` until its output is not `DeferredToolRequests`: every pause is decided by people.

    Returns the last run's result (`AgentRunResult`). `run_id` names the run (default: a new id): with
    the same id, a retried or resumed run reattaches to the requests it made.
    """
    run_id = run_id or uuid.uuid4().hex
    asker = _asker(agent, client, queue, timeout)
    result = await agent.run(user_prompt, message_history=message_history, **run_kwargs)
    return await _until_done(agent, asker, run_id, result, run_kwargs)


async def resume_with_approvals(
    agent: Agent[Any, Any],
    run_id: str,
    *,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
    **run_kwargs: Any,
) -> Any:
    """Finish a run paused by `run_with_approvals` in this or another process (after a restart, say)."""
    asker = _asker(agent, client, queue, timeout)
    saved = await asker.load(run_id)
    if saved is None:
        raise LookupError(f"no paused Pydantic AI run {run_id!r} (finished, never paused, or past retention)")
    history = ModelMessagesTypeAdapter.validate_json(saved)
    result = await agent.run(message_history=history, **run_kwargs)  # the same pause again, nothing run
    return await _until_done(agent, asker, run_id, result, run_kwargs)


async def _until_done(
    agent: Agent[Any, Any], asker: Asker, run_id: str, result: Any, run_kwargs: dict[str, Any]
) -> Any:
    while isinstance(result.output, DeferredToolRequests):
        history = result.all_messages()
        await asker.save(run_id, result.all_messages_json().decode())
        results = await decide_deferred(
            result.output, run_id=run_id, agent=agent, client=asker.client, queue=asker.queue, timeout=asker.timeout
        )
        result = await agent.run(message_history=history, deferred_tool_results=results, **run_kwargs)
    await asker.forget(run_id)
    return result
