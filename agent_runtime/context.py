"""What a tool can learn about the run that called it: agent, run id, task, step, recent steps.

Set by the agent around each tool execution, so tools such as the approval tool can tell reviewers
why they are asked and derive idempotency keys that are stable when a run is re-run.
"""

from __future__ import annotations

import contextvars
import itertools
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
    _calls: itertools.count[int] = field(default_factory=itertools.count)

    def start_step(self, step_number: int) -> None:
        self.step_number = step_number
        self._calls = itertools.count()

    def next_call_key(self) -> str:
        """`run:step:index`, counting calls in the order they start within the step."""
        return f"{self.run_id}:{self.step_number}:{next(self._calls)}"

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


def get_run_context() -> RunContext | None:
    """The run whose tool is executing now, or None outside an agent run."""
    return current_run.get()
