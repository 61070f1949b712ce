"""OpenAI Agents SDK runs whose tools with `needs_approval` wait for a person through this platform.

    from agents import Agent, function_tool
    from approvals.integrations.openai_agents import run_with_approvals

    @function_tool(needs_approval=True)
    def delete_file(path: str) -> str: ...

    agent = Agent(name="janitor", tools=[delete_file])
    result = await run_with_approvals(agent, "Clean up /tmp", run_id="cleanup-42", queue="files")

Each interruption becomes an approval request with the call's exact arguments; the decisions are set
on the `RunState` (approved, with the reviewer's edits, or rejected with the reason as the message the
model reads) and the run resumes, until it ends. A paused run's serialized `RunState` is kept in Redis
next to its requests, so `resume_with_approvals` finishes it in another process after a restart; the
requests' idempotency keys (run id, call id) make a resumed run reattach instead of asking twice.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import uuid
from typing import Any

from ..client import ApprovalClient
from ..models import Decision
from . import require
from ._common import Asker, Call, refusal

require("agents", "openai-agents")
from agents import Agent, FunctionTool, RunState, ToolApprovalItem  # noqa: E402
from agents import Runner as _Runner  # noqa: E402
from agents.tool_context import ToolContext  # noqa: E402

__all__ = ["decide_interruptions", "resume_with_approvals", "run_with_approvals"]

FRAMEWORK = "openai-agents"


def _asker(agent: Agent[Any], client: ApprovalClient | None, queue: str | None, timeout: float | None) -> Asker:
    return Asker(FRAMEWORK, client, queue, timeout, agent.name)


def _call(agent: Agent[Any], item: ToolApprovalItem) -> Call:
    raw = item.raw_item
    call_id = getattr(raw, "call_id", None) or (raw.get("call_id") if isinstance(raw, dict) else None)
    arguments = item.arguments or "{}"
    try:
        args = json.loads(arguments)
    except ValueError:
        args = {"arguments": arguments}
    if not isinstance(args, dict):
        args = {"arguments": args}
    name = item.tool_name or item.name or "tool"
    schema = next((t.params_json_schema for t in agent.tools if isinstance(t, FunctionTool) and t.name == name), None)
    return Call(str(call_id or uuid.uuid4().hex), name, args, schema=schema if isinstance(schema, dict) else None)


async def decide_interruptions(
    state: RunState[Any],
    agent: Agent[Any],
    *,
    run_id: str,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
) -> None:
    """Ask a person about each of the state's interruptions, wait, and approve or reject each on `state`.

    A reviewer's edits reach the tool only through `run_with_approvals` / `resume_with_approvals` (the
    SDK runs a call with the arguments the model gave); elsewhere an edited approval is sent back to
    the model as a refusal that names the approved arguments, to call again with.
    """
    items = state.get_interruptions()
    calls = [_call(agent, item) for item in items]
    decisions = await _asker(agent, client, queue, timeout).decide(run_id, calls)
    for item, call, decision in zip(items, calls, decisions, strict=True):
        _apply(state, item, call, decision)


def _apply(state: RunState[Any], item: ToolApprovalItem, call: Call, decision: Decision) -> None:
    if not decision.approved:
        state.reject(item, rejection_message=refusal(decision, call.action))
        return
    if decision.edited:
        edits = _edits.get()
        if edits is None or call.action not in edits.editable:  # a tool this run cannot re-aim (a handoff's)
            args = json.dumps(dict(decision.args))
            said = (
                f"A person approved this {call.action} call only with these arguments: {args}. Call it again with them."
            )
            state.reject(item, rejection_message=said)
            return
        edits.args[call.call_id] = dict(decision.args)
    state.approve(item)


@dataclasses.dataclass
class _Edits:
    """Reviewers' edits of approved calls, for the tools to run with (the SDK runs a call as the model made it)."""

    editable: set[str]  # names of the tools that take them
    args: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # by call id


_edits: contextvars.ContextVar[_Edits | None] = contextvars.ContextVar("approvals_openai_agents_edits", default=None)


def _editable(agent: Agent[Any]) -> tuple[Agent[Any], _Edits]:
    """A copy of `agent` whose tools that need approval run with a reviewer's edits, when there are some."""
    tools = [_take_edits(t) if isinstance(t, FunctionTool) and t.needs_approval else t for t in agent.tools]
    names = {t.name for t in agent.tools if isinstance(t, FunctionTool) and t.needs_approval}
    return agent.clone(tools=tools), _Edits(names)


def _take_edits(tool: FunctionTool) -> FunctionTool:
    original = tool.on_invoke_tool

    async def invoke(ctx: ToolContext[Any], input_json: str) -> Any:
        edits = _edits.get()
        edited = edits.args.pop(ctx.tool_call_id, None) if edits is not None else None
        if edited is None:
            return await original(ctx, input_json)
        arguments = json.dumps(edited)
        result = await original(ctx, arguments)
        # The model's call still shows what it asked: say what ran.
        return (
            f"(run with the arguments a person approved: {arguments}) {result}" if isinstance(result, str) else result
        )

    return dataclasses.replace(tool, on_invoke_tool=invoke)


async def run_with_approvals(
    agent: Agent[Any],
    input: Any,
    *,
    run_id: str | None = None,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
    **run_kwargs: Any,
) -> Any:
    """`Runner.run(agent, input)`, every interruption decided by people, until the run ends.

    Returns the `RunResult`. `run_id` names the run (default: a new id): with the same id a resumed
    run reattaches to the requests it made. Other keyword arguments go to `Runner.run`.
    """
    run_id = run_id or uuid.uuid4().hex
    agent, edits = _editable(agent)
    token = _edits.set(edits)
    try:
        result = await _Runner.run(agent, input, **run_kwargs)
        return await _until_done(agent, _asker(agent, client, queue, timeout), run_id, result, run_kwargs)
    finally:
        _edits.reset(token)


async def resume_with_approvals(
    agent: Agent[Any],
    run_id: str,
    *,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
    **run_kwargs: Any,
) -> Any:
    """Finish a run paused by `run_with_approvals`, in this or another process (after a restart, say)."""
    asker = _asker(agent, client, queue, timeout)
    saved = await asker.load(run_id)
    if saved is None:
        raise LookupError(f"no paused OpenAI Agents run {run_id!r} (finished, never paused, or past retention)")
    agent, edits = _editable(agent)
    token = _edits.set(edits)
    try:
        state = await RunState.from_string(agent, saved)
        await decide_interruptions(state, agent, run_id=run_id, client=asker.client, queue=queue, timeout=timeout)
        result = await _Runner.run(agent, state, **run_kwargs)
        return await _until_done(agent, asker, run_id, result, run_kwargs)
    finally:
        _edits.reset(token)


async def _until_done(agent: Agent[Any], asker: Asker, run_id: str, result: Any, run_kwargs: dict[str, Any]) -> Any:
    while result.interruptions:
        state = result.to_state()
        await asker.save(run_id, state.to_string())
        await decide_interruptions(
            state, agent, run_id=run_id, client=asker.client, queue=asker.queue, timeout=asker.timeout
        )
        result = await _Runner.run(agent, state, **run_kwargs)
    await asker.forget(run_id)
    return result
