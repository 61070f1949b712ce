"""What a tool can learn about the run that called it: agent, run id, task, step, recent steps.

Set by the agent around each tool execution, so tools such as the approval tool can tell reviewers
why they are asked and derive idempotency keys that are stable when a run is re-run.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

from .memory import ActionStep, AgentMemory


@dataclass
class RunContext:
    agent_name: str
    run_id: str
    task: str
    memory: AgentMemory
    step_number: int = 0
    run_timeout: float | None = None  # the whole run's limit, waits for people included
    deadline: float | None = None  # when it passes, in the event loop's time
    _asked: dict[int | None, int] = field(default_factory=dict)

    def start_clock(self) -> None:
        """Start the run's time limit (called on the run's event loop as the run starts)."""
        if self.run_timeout is not None:
            self.deadline = asyncio.get_running_loop().time() + self.run_timeout

    def remaining(self) -> float | None:
        """Seconds left before the run's time limit, or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()

    def deadline_passed(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0.001  # a timer may fire a hair early

    def expires_at(self) -> float | None:
        """The time limit as a Unix timestamp, for what outlives the process (approval requests)."""
        left = self.remaining()
        return None if left is None else time.time() + left

    def start_step(self, step_number: int) -> None:
        self.step_number = step_number
        self._asked = {}

    def next_call_key(self) -> str:
        """A key that is the same when the run is re-run: `run:step:n`.

        In a code action, n counts the requests in the order the code makes them. For a model's tool
        call it is the call's position in the step (`run:step:call.n`), whatever order parallel calls
        start in.
        """
        call = current_tool_call.get()
        count = self._asked.get(call, 0)
        self._asked[call] = count + 1
        if call is None:
            return f"{self.run_id}:{self.step_number}:{count}"
        return f"{self.run_id}:{self.step_number}:{call}.{count}"

    def recent_steps(self, limit: int = 3, max_chars: int = 2000) -> list[dict[str, Any]]:
        steps = self.memory.action_steps[-limit:]
        return [_summary(step, max_chars) for step in steps]


def _summary(step: ActionStep, max_chars: int) -> dict[str, Any]:
    return {
        "step": step.step_number,
        "model_output": (step.model_output or "")[:max_chars],
        "observations": (step.observations or "")[:max_chars],
        "error": str(step.error)[:max_chars] if step.error else None,
    }


current_run: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("current_run", default=None)
current_tool_call: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_tool_call", default=None)


def get_run_context() -> RunContext | None:
    """The run whose tool is executing now, or None outside an agent run."""
    return current_run.get()
