"""`ToolCallingAgent`: acts through the model's native tool calls, running one step's calls concurrently."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from .. import prompts
from ..context import current_tool_call
from ..errors import AgentParsingError, AgentToolCallError, AgentToolExecutionError
from ..memory import ActionStep, ToolCall
from ..models import ChatMessageStreamDelta
from ..tools import Tool
from .base import MultiStepAgent
from .runs import RunState


class ToolCallingAgent(MultiStepAgent):
    """Acts through the model's native tool calls; the calls of one step run concurrently."""

    def system_prompt(self) -> str:
        tools = "\n".join(f"- {t.name}: {t.description} Inputs: {json.dumps(t.inputs)}" for t in self.tools.values())
        return prompts.TOOL_CALLING_SYSTEM.format(tools=tools, instructions=self.instructions)

    async def _step(self, run: RunState, step: ActionStep) -> AsyncIterator[ChatMessageStreamDelta]:
        tools = list(self.tools.values())
        async for delta in self._model_output(run, run.memory.to_messages(), step, tools_to_call_from=tools):
            yield delta
        requested = (step.model_output_message.tool_calls if step.model_output_message else None) or []
        if not requested:
            raise AgentParsingError("The model called no tool. Call a tool, or call final_answer with your answer.")
        calls = [ToolCall(c.function.name, c.function.parsed_arguments(), c.id) for c in requested]
        step.tool_calls = calls
        results = await self._in_context(run, step, lambda: self._execute_all(calls))
        labelled = len(results) > 1
        step.observations = "\n".join(
            f"[{call.name}] {result}" if labelled else str(result)
            for call, (_, result) in zip(calls, results, strict=True)
        )
        finals = [value for (is_final, value) in results if is_final]
        if finals:
            step.action_output, step.is_final_answer = finals[0], True

    async def _execute_all(self, calls: list[ToolCall]) -> list[tuple[bool, Any]]:
        """The step's calls, concurrently. Errors become observations; what is not an error (the run
        being cancelled or stopped) ends the step, and the other calls with it."""
        limit = asyncio.Semaphore(self.max_tool_threads or len(calls) or 1)  # smolagents' max_tool_threads
        tasks = [asyncio.ensure_future(self._execute_within(limit, call, index)) for index, call in enumerate(calls)]
        try:
            return await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)  # their clean-up (withdrawing what they asked) is part of the step's
            raise

    async def _execute_within(self, limit: asyncio.Semaphore, call: ToolCall, index: int) -> tuple[bool, Any]:
        async with limit:
            return await self._execute(call, index)

    async def _execute(self, call: ToolCall, index: int) -> tuple[bool, Any]:
        """(is this the final answer, result or error text): one failing call does not sink the others."""
        current_tool_call.set(index)  # this task's own context: approval keys follow the call's position
        tool = self.tools.get(call.name)
        if tool is None:
            return False, f"Error: unknown tool {call.name!r}; use one of {sorted(self.tools)}"
        try:
            if isinstance(call.arguments, dict):
                result = await tool.acall(**call.arguments)
            elif _single_text_input(tool):
                result = await tool.acall(call.arguments)
            else:
                return False, f"Error: the arguments of {call.name} must be a JSON object, not {call.arguments!r:.200}"
        except AgentToolCallError as error:
            return False, f"Error: {error}"
        except Exception as error:
            return False, f"Error: {AgentToolExecutionError(f'{call.name} failed: {type(error).__name__}: {error}')}"
        return call.name == "final_answer", result


def _single_text_input(tool: Tool) -> bool:
    """A tool taking one string can be given the model's raw argument text."""
    return len(tool.inputs) == 1 and next(iter(tool.inputs.values())).get("type") == "string"
