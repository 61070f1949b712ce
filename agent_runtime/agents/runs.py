"""What one run owns (`RunState`) and how it ended (`RunResult`), and turning its events into either."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from ..context import RunContext
from ..errors import AgentRunTimeout
from ..executor import LocalPythonExecutor
from ..memory import ActionStep, AgentMemory, FinalAnswerStep, PlanningStep, Timing
from ..models import ChatMessageStreamDelta, TokenUsage

StreamEvent = PlanningStep | ActionStep | FinalAnswerStep | ChatMessageStreamDelta

RunOutcome = Literal["success", "max_steps_error", "run_timeout"]


@dataclass
class RunState:
    """Everything one run owns."""

    run_id: str
    task: str
    memory: AgentMemory
    context: RunContext
    state: dict[str, Any] = field(default_factory=dict)
    step_number: int = 1
    executor: LocalPythonExecutor | None = None  # CodeAgent only
    outcome: RunOutcome = "success"
    timing: Timing = field(default_factory=Timing)


@dataclass
class RunResult:
    """How a run ended, as smolagents' `return_full_result=True` gives it.

    `state` is "success" (the agent gave a final answer), "max_steps_error" (it used all its steps;
    `output` is what the model said when asked to conclude) or "run_timeout" (it reached its
    `run_timeout`; `output` is None).
    """

    output: Any
    state: RunOutcome
    token_usage: TokenUsage | None
    timing: Timing
    memory: AgentMemory = field(repr=False)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The run's steps as dicts (made on first use: they hold every model message)."""
        return self.memory.get_full_steps()


async def result(run: RunState, events: AsyncIterator[StreamEvent], *, full: bool) -> Any:
    """The final answer, or with `full` the whole `RunResult` (a timed-out run included)."""
    output = None
    try:
        async for event in events:
            if isinstance(event, FinalAnswerStep):
                output = event.output
    except AgentRunTimeout:
        run.outcome = "run_timeout"
        if not full:
            raise
    finally:
        run.timing.stop()
    if not full:
        return output
    return RunResult(output, run.outcome, token_usage(run.memory), run.timing, run.memory)


def _token_usage(memory: AgentMemory) -> TokenUsage | None:
    usages = [s.token_usage for s in memory.steps if isinstance(s, ActionStep | PlanningStep) and s.token_usage]
    if not usages:
        return None
    return TokenUsage(sum(u.input_tokens for u in usages), sum(u.output_tokens for u in usages))


def token_usage(memory: AgentMemory) -> TokenUsage | None:
    usages = [s.token_usage for s in memory.steps if isinstance(s, ActionStep | PlanningStep) and s.token_usage]
    if not usages:
        return None
    return TokenUsage(sum(u.input_tokens for u in usages), sum(u.output_tokens for u in usages))
