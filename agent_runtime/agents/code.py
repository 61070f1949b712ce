"""`CodeAgent`: acts by writing Python that calls tools (without `await`), run on the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .. import prompts
from ..errors import UnsupportedFeature
from ..executor import BASE_BUILTIN_MODULES, LocalPythonExecutor, parse_code_blobs
from ..executor.local import NO_LIMIT
from ..memory import ActionStep, ToolCall
from ..models import ChatMessageStreamDelta, Model
from ..tools import Tool
from .base import MultiStepAgent
from .runs import RunState

EXECUTOR_KWARGS = {"timeout_seconds", "max_print_outputs_length", "additional_authorized_imports", "max_operations"}
MARKDOWN_TAGS = ("```(?:python|py)", "\\n```")


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
        executor_type: str = "local",
        executor_kwargs: Mapping[str, Any] | None = None,
        max_print_outputs_length: int | None = None,
        code_block_tags: tuple[str, str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        """smolagents' executor options are taken as they are where they mean something here:
        `executor_type="local"` (the only one), `executor_kwargs` with `timeout_seconds` (None: no
        limit), `max_print_outputs_length`, `additional_authorized_imports` or `max_operations`, and
        `code_block_tags` (two regexes, or "markdown")."""
        if executor_type != "local":
            raise UnsupportedFeature(
                f"executor_type={executor_type!r}: this runtime runs code in-process, guarded and budgeted "
                "(executor_type='local'); run untrusted agents in a container of your own"
            )
        options = dict(executor_kwargs or {})
        if unknown := sorted(set(options) - EXECUTOR_KWARGS):
            raise UnsupportedFeature(f"executor_kwargs {unknown}: supported are {sorted(EXECUTOR_KWARGS)}")
        self.additional_authorized_imports = [
            *additional_authorized_imports,
            *options.pop("additional_authorized_imports", ()),
        ]
        self.executor_options: dict[str, Any] = {"additional_authorized_imports": self.additional_authorized_imports}
        if "timeout_seconds" in options:
            limit = options.pop("timeout_seconds")
            options["timeout_seconds"] = NO_LIMIT if limit is None else limit
        self.executor_options |= options
        if max_operations is not None:
            self.executor_options["max_operations"] = max_operations
        if executor_timeout is not None:
            self.executor_options["timeout_seconds"] = executor_timeout
        if max_print_outputs_length is not None:
            self.executor_options["max_print_outputs_length"] = max_print_outputs_length
        self.code_block_tags: tuple[str, str] | None = None
        if code_block_tags == "markdown":
            self.code_block_tags = MARKDOWN_TAGS
        elif isinstance(code_block_tags, (tuple, list)) and len(code_block_tags) == 2:
            self.code_block_tags = (str(code_block_tags[0]), str(code_block_tags[1]))
        elif code_block_tags is not None:
            raise UnsupportedFeature('code_block_tags: give (opening, closing) regexes, or "markdown"')
        self._prepared_executor: LocalPythonExecutor | None = None
        super().__init__(tools, model, **kwargs)

    @property
    def python_executor(self) -> LocalPythonExecutor:
        """The executor of the last run (its variables); before any run, the one the first run will use."""
        run = self._last_run
        if run is not None:
            return self._executor(run)
        if self._prepared_executor is None:
            self._prepared_executor = self._new_executor()
        return self._prepared_executor

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
            run.executor, self._prepared_executor = self._prepared_executor or self._new_executor(), None
            run.executor.send_variables(run.state)
        return run.executor

    def _new_executor(self) -> LocalPythonExecutor:
        executor = LocalPythonExecutor(**self.executor_options)
        executor.send_tools(self.tools)
        return executor

    async def _step(self, run: RunState, step: ActionStep) -> AsyncIterator[ChatMessageStreamDelta]:
        messages = run.memory.to_messages()
        async for delta in self._model_output(run, messages, step, stop_sequences=["Observation:"]):
            yield delta
        code = parse_code_blobs(step.model_output or "", self.code_block_tags)
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
