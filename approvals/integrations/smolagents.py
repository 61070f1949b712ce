"""smolagents tools that ask through this platform: `HumanApprovalTool`, and `require_approval` for any tool.

    from smolagents import CodeAgent, InferenceClientModel
    from approvals.integrations.smolagents import HumanApprovalTool, require_approval

    agent = CodeAgent(
        tools=[HumanApprovalTool(queue="ops"), require_approval(send_email, queue="email")],
        model=InferenceClientModel(),
        executor_kwargs={"timeout_seconds": None},  # a person may take hours: no limit on code that waits
    )
    agent.run("Email the quarterly figures to the board")

smolagents calls tools synchronously, from the agent's thread (or its pool of tool threads when a
ToolCallingAgent makes several calls at once). Each call's wait is a coroutine on one background event
loop per process, through one `ApprovalClient`: every waiting call shares that client's single Pub/Sub
connection, and a thread blocked on a decision holds no Redis connection of its own.

Requests say where they came from: the framework, the agent's name, a run id, the task, the step and
the recent steps (the dashboard shows them). The run id is new for each `agent.run` unless given with
`approvals_run(run_id)`; with the same run id, a retried run (even in another process) that makes the
same call at the same step reattaches to the request it made before instead of asking twice, and an
approved call that already ran returns its noted result instead of running again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import Any, ClassVar

from agent_runtime.concurrency import background, run_coroutine_sync

from ..client import ApprovalClient
from ..errors import ClientClosed
from ..models import Decision
from ..tool import HumanApprovalTool as RuntimeApprovalTool
from ..tool import close_default_client, default_client, inputs_schema, said_to_model
from . import require

smolagents = require("smolagents", "smolagents")
from smolagents import Tool  # noqa: E402  (after the check that says which extra to install)
from smolagents.agents import MultiStepAgent  # noqa: E402
from smolagents.memory import ActionStep, TaskStep  # noqa: E402

__all__ = ["CodeTimeLimitError", "HumanApprovalTool", "approvals_run", "require_approval"]

FRAMEWORK = "smolagents"
RECENT_STEPS = 3
MAX_STEP_CHARS = 2000

_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("approvals_smolagents_run", default=None)


class CodeTimeLimitError(RuntimeError):
    """The tool was called from code that smolagents stops after a time limit, too short for a person."""

    def __init__(self) -> None:
        super().__init__(
            "This CodeAgent stops its code after a time limit (smolagents' default: 30 s), and a person may "
            "take hours to decide: nothing was asked. Create the agent with "
            'executor_kwargs={"timeout_seconds": None} so that code waiting for a person is not cut short.'
        )


@contextlib.contextmanager
def approvals_run(run_id: str) -> Iterator[None]:
    """Name the agent runs started inside this block, so a retried run reattaches to what it asked.

    smolagents copies the context into its tool threads, so parallel tool calls see it too.
    """
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


class _Run:
    """One `agent.run` as this module knows it: its id, and how many times each call was made per step."""

    def __init__(self, run_id: str) -> None:
        self.id = run_id
        self._seen: dict[tuple[int, str, str], int] = {}
        self._lock = threading.Lock()

    def call_key(self, step: int, action: str, args: Mapping[str, Any]) -> str:
        """The same call at the same step of the same run gets the same key (the nth such call: n)."""
        digest = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()[:16]
        with self._lock:
            n = self._seen.get((step, action, digest), 0)
            self._seen[step, action, digest] = n + 1
        return f"{step}:{action}:{digest}:{n}"


_runs_lock = threading.Lock()
RUN_ATTRIBUTE = "_approvals_run"  # kept on the agent: (the TaskStep its run started with, that run)


def _calling_agent() -> MultiStepAgent | None:
    """The smolagents agent whose step called the tool, found on this thread's stack (tool threads of
    parallel calls run a closure that holds it too); None when called outside an agent."""
    frame: FrameType | None = sys._getframe(1)
    timed_code = False
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, MultiStepAgent):
            return candidate
        if frame.f_code.co_name == "_execute_code" and frame.f_code.co_filename.endswith("local_python_executor.py"):
            timed_code = True  # model-written code, in a thread of its own: smolagents' time limit
        frame = frame.f_back
    if timed_code:
        raise CodeTimeLimitError()
    return None


def _run_of(agent: MultiStepAgent) -> _Run:
    """The agent's current run: a new one for every agent.run (each starts with a TaskStep of its own)."""
    tasks = [step for step in agent.memory.steps if isinstance(step, TaskStep)]
    started = tasks[-1] if tasks else None
    with _runs_lock:
        known = getattr(agent, RUN_ATTRIBUTE, None)
        if known is None or known[0] is not started:
            known = (started, _Run(_run_id.get() or uuid.uuid4().hex))
            setattr(agent, RUN_ATTRIBUTE, known)
        run: _Run = known[1]
        return run


def _recent_steps(agent: MultiStepAgent) -> list[dict[str, Any]]:
    steps = [step for step in agent.memory.steps if isinstance(step, ActionStep)][-RECENT_STEPS:]
    return [
        {
            "step": step.step_number,
            "model_output": str(step.model_output or "")[:MAX_STEP_CHARS],
            "observations": str(step.observations or "")[:MAX_STEP_CHARS],
            "error": str(step.error)[:MAX_STEP_CHARS] if step.error else None,
        }
        for step in steps
    ]


def _where(action: str, args: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(create() keyword arguments, context) for a call made now, from this thread."""
    agent = _calling_agent()
    if agent is None:
        return {}, {"framework": FRAMEWORK}
    run = _run_of(agent)
    name = agent.name or type(agent).__name__
    identity = {
        "agent_id": name,
        "run_id": run.id,
        "idempotency_key": run.call_key(agent.step_number, action, args),
        "idempotency_scope": f"{FRAMEWORK}-run:{run.id}",  # the run's own keys: nobody else's can collide
    }
    context = {
        "framework": FRAMEWORK,
        "agent": name,
        "run_id": run.id,
        "task": str(agent.task or ""),
        "step": agent.step_number,
        "recent_steps": _recent_steps(agent),
    }
    return identity, context


class _Clients:
    """The clients the tools ask through, each started once on the background loop and closed at exit."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None

    async def get(self, client: ApprovalClient | None) -> ApprovalClient:
        if client is None:
            background.at_exit(close_default_client, close_default_client)
            return await default_client()  # one per loop: one for the whole process here
        if not _started(client):
            self._lock = self._lock or asyncio.Lock()  # always on the background loop
            async with self._lock:
                if not _started(client):
                    await client.start()
                    background.at_exit(client, client.aclose)
        return client


def _started(client: ApprovalClient) -> bool:
    try:
        client.store  # noqa: B018
    except ClientClosed:
        return False
    return True


_clients = _Clients()


class _Asks:
    """Which client, queue and deadline a tool asks with, and the asking, from the calling thread."""

    def __init__(self, client: ApprovalClient | None, queue: str | None, timeout: float | None) -> None:
        self._client = client
        self.queue = queue
        self.timeout = timeout

    def ask(self, action: str, args: Mapping[str, Any], schema: dict[str, Any] | None) -> Decision:
        identity, context = _where(action, args)

        async def asking() -> Decision:
            client = await _clients.get(self._client)
            return await client.request_approval(
                action, args, queue=self.queue, timeout=self.timeout, context=context, args_schema=schema, **identity
            )

        return run_coroutine_sync(asking)

    def outcome(self, request_id: str) -> tuple[bool, Any]:
        async def reading() -> tuple[bool, Any]:
            return await (await _clients.get(self._client)).store.outcome(request_id)

        return run_coroutine_sync(reading)

    def record(self, request_id: str, outcome: Any) -> None:
        async def noting() -> None:
            await (await _clients.get(self._client)).store.record_outcome(request_id, outcome)

        run_coroutine_sync(noting)


class HumanApprovalTool(Tool):
    """Ask a human to approve an action before the agent does it (a smolagents tool)."""

    name = RuntimeApprovalTool.name
    description = RuntimeApprovalTool.description  # the same words the model reads in agent_runtime
    inputs: ClassVar[dict[str, dict[str, Any]]] = RuntimeApprovalTool.inputs
    output_type = "string"

    def __init__(
        self, client: ApprovalClient | None = None, *, queue: str | None = "default", timeout: float | None = None
    ) -> None:
        super().__init__()
        self._asks = _Asks(client, queue, timeout)

    def forward(self, action: str) -> str:
        return said_to_model(self._asks.ask(action, {"action": action}, inputs_schema(self.inputs)), action)


class ApprovalRejected(Exception):
    """A call of a tool whose output is a file (image, audio) was not approved: said as an error."""


def require_approval(
    tool: Tool, *, client: ApprovalClient | None = None, queue: str | None = "default", timeout: float | None = None
) -> Tool:
    """`tool`, changed so that each call becomes an approval request carrying its exact arguments.

    On approval the tool runs with the approved arguments (the reviewer's edits, if any), once: its
    result is noted with the request, so a retried run that reattaches gets it back without running
    the tool again. Otherwise the model gets a plain observation with the reviewer's reason.
    """
    asks = _Asks(client, queue, timeout)
    schema = inputs_schema(tool.inputs)

    def forward(self: Tool, *args: Any, **kwargs: Any) -> Any:
        arguments = dict(zip(tool.inputs, args, strict=False)) | kwargs
        decision = asks.ask(tool.name, arguments, schema)
        if not decision.approved:
            said = f"The reviewer did not approve this {tool.name} call ({decision.status.value}): {decision.reason}"
            if tool.output_type in ("image", "audio"):
                raise ApprovalRejected(said)
            return said  # an observation, not an error: an error would make the model retry the same call
        ran, outcome = asks.outcome(decision.request_id)
        if ran:
            return outcome
        result = tool(**decision.args)
        asks.record(decision.request_id, result)
        return result

    attributes = {
        "name": tool.name,
        "description": f"{tool.description} (Each call waits for a person's approval of its exact arguments.)",
        "inputs": tool.inputs,
        "output_type": tool.output_type,
        "output_schema": getattr(tool, "output_schema", None),
        "skip_forward_signature_validation": True,
        "forward": forward,
        "wrapped": tool,
    }
    wrapper: type[Tool] = type(f"ApprovalRequired_{tool.name}", (Tool,), attributes)
    return wrapper()
