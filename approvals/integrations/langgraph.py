"""LangGraph graphs that pause for a person's approval through this platform.

Inside a node or a tool, `request_approval(action, args)` calls LangGraph's `interrupt()` with a
payload this module recognises, and returns the decision when the graph is resumed; `require_approval`
wraps any LangChain tool so each call does that with its exact arguments. Outside the graph,
`run_with_approvals` runs it until it pauses, makes each approval interrupt a request (idempotency key:
the thread id and the interrupt id), waits for the decisions and resumes with `Command(resume=...)`,
until no approval interrupt is left. With a checkpointer that outlives the process (a database saver,
such as langgraph-checkpoint-sqlite's), a graph paused in one process is resumed in another:
`run_with_approvals(..., wait=False)` asks and returns at once; `resume_with_approvals` later waits for
the decisions (reattaching to the same requests) and finishes it.

    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from approvals.integrations.langgraph import require_approval, run_with_approvals

    graph = builder.compile(checkpointer=saver)  # a node or tool calls request_approval(...)
    config = {"configurable": {"thread_id": "ticket-1234"}}
    output = await run_with_approvals(graph, {"messages": [...]}, config, queue="ops")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..client import ApprovalClient
from ..models import Decision
from . import require
from ._common import Asker, Call

require("langgraph", "langgraph")
from langchain_core.tools import BaseTool, StructuredTool  # noqa: E402
from langgraph.types import Command, GraphOutput, Interrupt, interrupt  # noqa: E402

__all__ = [
    "MARKER",
    "decide_interrupts",
    "request_approval",
    "require_approval",
    "resume_with_approvals",
    "run_with_approvals",
]

FRAMEWORK = "langgraph"
MARKER = "approvals:request"  # the key of an approval interrupt's payload


def request_approval(
    action: str,
    args: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    timeout: float | None = None,
    args_schema: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Pause the graph until a person decides (call it in a node or a tool, like `interrupt()`).

    Returns the decision: `approved` (bool), `status`, `args` (as approved: the reviewer's edits, if
    any), `edited`, `reason`, `decided_by`, `request_id`. As with any `interrupt()`, the node runs again
    from its start when resumed: keep what comes before the call free of side effects.
    """
    payload = {"action": action, "args": dict(args or {}), "queue": queue, "timeout": timeout, "schema": args_schema}
    decision: dict[str, Any] = interrupt({MARKER: payload})
    return decision


def require_approval(tool: BaseTool, *, queue: str | None = None, timeout: float | None = None) -> BaseTool:
    """`tool`, changed so that each call first pauses the graph for a person's approval of its arguments.

    Approved, it runs with the approved arguments (the reviewer's edits, if any); otherwise the tool's
    result is a plain sentence with the reason, which the model can act on.
    """
    schema = tool.tool_call_schema.model_json_schema() if hasattr(tool.tool_call_schema, "model_json_schema") else None

    def ask(arguments: dict[str, Any]) -> dict[str, Any]:
        return request_approval(tool.name, arguments, queue=queue, timeout=timeout, args_schema=schema)

    def run(**arguments: Any) -> Any:
        decision = ask(arguments)
        if not decision["approved"]:
            return _refusal(tool.name, decision)
        return tool.invoke(decision["args"])

    async def arun(**arguments: Any) -> Any:
        decision = ask(arguments)
        if not decision["approved"]:
            return _refusal(tool.name, decision)
        return await tool.ainvoke(decision["args"])

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=tool.name,
        description=f"{tool.description} (Each call waits for a person's approval of its exact arguments.)",
        args_schema=tool.args_schema,
    )


def _refusal(action: str, decision: Mapping[str, Any]) -> str:
    reason = decision.get("reason") or "no reason given"
    return f"A person did not approve this {action} call ({decision.get('status')}): {reason}"


def _approval_interrupts(interrupts: Any) -> list[Interrupt]:
    return [i for i in interrupts or () if isinstance(i.value, Mapping) and MARKER in i.value]


def _thread(config: Mapping[str, Any]) -> str:
    thread = (config.get("configurable") or {}).get("thread_id")
    if not thread:
        raise ValueError('the config needs {"configurable": {"thread_id": ...}}: it names the run and its requests')
    return str(thread)


def _call(item: Interrupt) -> Call:
    payload = item.value[MARKER]
    return Call(
        item.id,
        str(payload["action"]),
        payload.get("args") or {},
        schema=payload.get("schema"),
        queue=payload.get("queue"),
        timeout=payload.get("timeout"),
    )


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "approved": decision.approved,
        "status": decision.status.value,
        "args": dict(decision.args),
        "edited": decision.edited,
        "reason": decision.reason,
        "decided_by": decision.decided_by,
        "request_id": decision.request_id,
    }


async def decide_interrupts(
    graph: Any,
    config: Mapping[str, Any],
    *,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
    wait: bool = True,
) -> Command[Any] | None:
    """Ask about the thread's pending approval interrupts; with `wait`, the `Command` that resumes the
    graph with the decisions (None when no approval interrupt is pending). Without `wait`, the requests
    are made (or found again) and None is returned."""
    thread = _thread(config)
    pending = _approval_interrupts((await graph.aget_state(config)).interrupts)
    if not pending:
        return None
    asker = Asker(FRAMEWORK, client, queue, timeout, getattr(graph, "name", None) or "langgraph")
    calls = [_call(item) for item in pending]
    if not wait:
        await asker.submit(thread, calls)
        return None
    decisions = await asker.decide(thread, calls)
    return Command(resume={item.id: _decision(d) for item, d in zip(pending, decisions, strict=True)})


async def run_with_approvals(
    graph: Any,
    input: Any,
    config: Mapping[str, Any],
    *,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
    wait: bool = True,
) -> GraphOutput[Any]:
    """`graph.ainvoke(input, config)`, and each pause for approval decided by people, until none is left.

    Returns the last `GraphOutput` (`.value`, and `.interrupts` of other kinds still pending). With
    `wait=False` it returns at the first pause, its requests made: finish later, anywhere, with
    `resume_with_approvals`.
    """
    _thread(config)
    output = await graph.ainvoke(input, config, version="v2")
    return await _until_done(graph, config, output, client, queue, timeout, wait)


async def resume_with_approvals(
    graph: Any,
    config: Mapping[str, Any],
    *,
    client: ApprovalClient | None = None,
    queue: str | None = "default",
    timeout: float | None = None,
) -> GraphOutput[Any]:
    """Wait for the decisions on a paused thread (made by `run_with_approvals` here or in another
    process) and resume it, until no approval interrupt is left."""
    state = await graph.aget_state(config)
    if not _approval_interrupts(state.interrupts):
        raise LookupError(f"thread {_thread(config)!r} is not paused for approval")
    return await _until_done(graph, config, None, client, queue, timeout, True)


async def _until_done(
    graph: Any,
    config: Mapping[str, Any],
    output: GraphOutput[Any] | None,
    client: ApprovalClient | None,
    queue: str | None,
    timeout: float | None,
    wait: bool,
) -> GraphOutput[Any]:
    while True:
        command = await decide_interrupts(graph, config, client=client, queue=queue, timeout=timeout, wait=wait)
        if command is None:
            if output is None:
                state = await graph.aget_state(config)
                output = GraphOutput(state.values, tuple(state.interrupts))
            return output
        output = await graph.ainvoke(command, config, version="v2")
