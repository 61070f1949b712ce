"""`CodeAgent`: acts by writing Python that calls tools (without `await`), run on the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from .. import prompts
from ..executor import BASE_BUILTIN_MODULES, LocalPythonExecutor, parse_code_blobs
from ..memory import ActionStep, ToolCall
from ..models import ChatMessageStreamDelta, Model
from ..tools import Tool
from .base import MultiStepAgent
from .runs import RunState


class CodeAgent(MultiStepAgent):
    """Acts by writing Python that calls tools (without `await`); runs it on the event loop."""

    def __init__(
        self,
        tools: Sequence[Tool],
        model: Model,
        *,
        additional_authorized_imports: Sequence[str] = (),
        max_operations: int | None = None,
        executor_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.additional_authorized_imports = list(additional_authorized_imports)
        self.executor_options: dict[str, Any] = {"additional_authorized_imports": self.additional_authorized_imports}
        if max_operations is not None:
            self.executor_options["max_operations"] = max_operations
        if executor_timeout is not None:
            self.executor_options["timeout_seconds"] = executor_timeout
        super().__init__(tools, model, **kwargs)

    def system_prompt(self) -> str:
        return prompts.CODE_AGENT_SYSTEM.format(
            tools="\n\n".join(t.to_code_prompt() for t in self.tools.values()),
            imports=", ".join(sorted({*BASE_BUILTIN_MODULES, *self.additional_authorized_imports})),
            instructions=self.instructions,
        )

    def _new_run(self, task: str, reset: bool, additional_args: dict[str, Any], run_id: str | None) -> RunState:
        run = super()._new_run(task, reset, additional_args, run_id)
        if run.executor is not None:  # a run going on from the last one: its variables, and the new ones
            run.executor.send_variables(run.state)
        return run

    def _executor(self, run: RunState) -> LocalPythonExecutor:
        """The run's executor, made when its first code runs (a run waiting for its model holds none;
        with a thousand runs in flight, fewer objects for the GC to walk); variables persist across steps."""
        if run.executor is None:
            run.executor = LocalPythonExecutor(**self.executor_options)
            run.executor.send_tools(self.tools)
            run.executor.send_variables(run.state)
        return run.executor

    async def _step(self, run: RunState, step: ActionStep) -> AsyncIterator[ChatMessageStreamDelta]:
        messages = run.memory.to_messages()
        async for delta in self._model_output(run, messages, step, stop_sequences=["Observation:"]):
            yield delta
        code = parse_code_blobs(step.model_output or "")
        step.code_action = code
        step.tool_calls = [ToolCall("python_interpreter", code, f"call_{step.step_number}")]
        result = await self._in_context(run, step, lambda: self._executor(run).arun(code))
        shown = (
            ""
            if result.output is None or result.is_final_answer
            else f"\nLast output from code snippet:\n{result.output}"
        )
        step.observations = f"Execution logs:\n{result.logs}{shown}"
        step.action_output = result.output
        step.is_final_answer = result.is_final_answer
