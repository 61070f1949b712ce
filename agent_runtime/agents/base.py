"""`MultiStepAgent`: the step loop both agents share (plan, act, observe, until a final answer), with
`arun` and a sync `run` over it. Every run has its own `RunState`: concurrent `arun` calls on one
agent instance never see each other's steps.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar, overload

from .. import prompts
from ..concurrency import iterate_async_sync, run_coroutine_sync
from ..context import RunContext, current_run
from ..errors import AgentError, AgentGenerationError, AgentMaxStepsError, AgentRunTimeout, UnsupportedFeature
from ..memory import ActionStep, AgentMemory, FinalAnswerStep, PlanningStep, SystemPromptStep, TaskStep
from ..models import ChatMessage, ChatMessageStreamDelta, Model, agglomerate_stream_deltas
from ..monitoring import LogLevel
from ..tools import FinalAnswerTool, Tool
from ..turns import take_turn
from .managed import managed_agent_tool
from .runs import RunState, StreamEvent, result

T = TypeVar("T")
log = logging.getLogger("agent_runtime.agents")
Callback = Callable[..., Any]


class MultiStepAgent:
    """The step loop shared by both agents: plan (optionally), act, observe, until a final answer."""

    name: str
    description: str | None

    def __init__(
        self,
        tools: Sequence[Tool],
        model: Model,
        *,
        instructions: str | None = None,
        max_steps: int = 20,
        planning_interval: int | None = None,
        step_callbacks: Sequence[Callback] | dict[type, Sequence[Callback]] | None = None,
        name: str | None = None,
        description: str | None = None,
        stream_outputs: bool = False,
        return_full_result: bool = False,
        run_timeout: float | None = None,
        final_answer_checks: Sequence[Callable[..., Any]] | None = None,
        managed_agents: Sequence[MultiStepAgent] | None = None,
        verbosity_level: int = LogLevel.OFF,
        add_base_tools: bool = False,
        max_tool_threads: int | None = None,
    ) -> None:
        """`run_timeout` bounds a whole run in seconds, waits for people included (None: no limit);
        budgets of code actions do not count those waits (see `agent_runtime.budget`).

        As in smolagents: `final_answer_checks` are called with (answer, memory) and a False or an error
        sends the model back to work; `managed_agents` are called like tools (by name, with a task);
        `verbosity_level` (a `LogLevel`; default OFF, where smolagents prints at INFO) sets what the
        "agent_runtime.agents" logger says; at most
        `max_tool_threads` tool calls of one step run at once (default: all).
        """
        if add_base_tools:
            raise UnsupportedFeature(
                "add_base_tools: this runtime ships no default tools (web search, page visits, speech to text); "
                "pass the tools you want in tools=[...]"
            )
        self.tools: dict[str, Tool] = {t.name: t for t in tools}
        self.managed_agents = {agent.name: agent for agent in managed_agents or ()}
        for agent in self.managed_agents.values():
            self.tools[agent.name] = managed_agent_tool(agent)
        self.tools.setdefault("final_answer", FinalAnswerTool())
        self.final_answer_checks = list(final_answer_checks or ())
        self.verbosity_level = LogLevel(verbosity_level)
        self.max_tool_threads = max_tool_threads
        self.interrupt_switch = False
        self.model = model
        self.instructions = instructions or ""
        self.max_steps = max_steps
        self.planning_interval = planning_interval
        self.name = name or type(self).__name__
        self.description = description
        self.stream_outputs = stream_outputs
        self.return_full_result = return_full_result
        self.run_timeout = run_timeout
        self._callbacks = _callbacks_by_type(step_callbacks)
        self._last_run: RunState | None = None

    # -- public API ------------------------------------------------------------------------------

    @property
    def memory(self) -> AgentMemory:
        """The memory of the most recently started run."""
        if self._last_run is None:
            return AgentMemory(SystemPromptStep(self.system_prompt()))
        return self._last_run.memory

    @property
    def step_number(self) -> int:
        return 0 if self._last_run is None else self._last_run.step_number

    @overload
    def arun(
        self, task: str, *, stream: Literal[False] = ..., reset: bool = ..., max_steps: int | None = ...,
        additional_args: dict[str, Any] | None = ..., run_id: str | None = ...,
        return_full_result: bool | None = ..., run_timeout: float | None = ..., images: Any = ...,
    ) -> Awaitable[Any]: ...  # fmt: skip

    @overload
    def arun(
        self, task: str, *, stream: Literal[True], reset: bool = ..., max_steps: int | None = ...,
        additional_args: dict[str, Any] | None = ..., run_id: str | None = ...,
        return_full_result: bool | None = ..., run_timeout: float | None = ..., images: Any = ...,
    ) -> AsyncIterator[StreamEvent]: ...  # fmt: skip

    def arun(
        self,
        task: str,
        *,
        stream: bool = False,
        reset: bool = True,
        max_steps: int | None = None,
        additional_args: dict[str, Any] | None = None,
        run_id: str | None = None,
        return_full_result: bool | None = None,
        run_timeout: float | None = None,
        images: Any = None,
    ) -> Awaitable[Any] | AsyncIterator[StreamEvent]:
        """`await agent.arun(task)` gives the final answer (a `RunResult` with `return_full_result=True`);
        `async for step in agent.arun(task, stream=True)` gives planning, action and final-answer
        steps (and model deltas with `stream_outputs=True`).

        `run_timeout` (default: the agent's) bounds the whole run, waits for people included: past
        it the run stops and `AgentRunTimeout` is raised (a `RunResult` with state "run_timeout"
        when full results are asked for). Requests for approval made by the run expire by then too.
        """
        _no_images(images)
        run = self._new_run(task, reset, additional_args or {}, run_id)
        run.context.run_timeout = self.run_timeout if run_timeout is None else run_timeout
        events = self._run(run, max_steps or self.max_steps)
        if stream:
            return events
        full = self.return_full_result if return_full_result is None else return_full_result
        return result(run, events, full=full)

    def run(self, task: str, *, stream: bool = False, images: Any = None, **kwargs: Any) -> Any:
        """Sync face of `arun`. Called inside a running event loop, it blocks the caller, as sync code does."""
        _no_images(images)
        if stream:
            return iterate_async_sync(lambda: self.arun(task, stream=True, **kwargs))
        return run_coroutine_sync(lambda: self.arun(task, **kwargs))

    def __call__(self, task: str, **kwargs: Any) -> Any:
        return self.run(task, **kwargs)

    def add_step_callback(self, callback: Callback, step_type: type = ActionStep) -> None:
        """Call `callback(step)` (sync or async; with `agent=` if it takes it) for every step of that type."""
        self._callbacks.setdefault(step_type, []).append((callback, _accepts_agent(callback)))

    def interrupt(self) -> None:
        """Stop the running run before its next step (it raises `AgentError("Agent interrupted.")`)."""
        self.interrupt_switch = True

    def write_memory_to_messages(self, summary_mode: bool = False) -> list[ChatMessage]:
        """The last run's memory as the messages the model would be sent."""
        return self.memory.to_messages(summary_mode=summary_mode)

    def replay(self, detailed: bool = False) -> None:
        """Print the last run, step by step (with `detailed`, what the model was sent, too)."""
        print(replay_text(self.memory, detailed))

    # -- the loop --------------------------------------------------------------------------------

    def system_prompt(self) -> str:
        raise NotImplementedError

    def _new_run(self, task: str, reset: bool, additional_args: dict[str, Any], run_id: str | None) -> RunState:
        previous = None if reset else self._last_run
        memory = previous.memory if previous else AgentMemory(SystemPromptStep(self.system_prompt()))
        if additional_args:
            task += f"\nYou have been provided with these additional arguments: {list(additional_args)}."
        run_id = run_id or uuid.uuid4().hex
        run = RunState(
            run_id=run_id,
            task=task,
            memory=memory,
            context=RunContext(self.name, run_id, task, memory),
            state={**(previous.state if previous else {}), **additional_args},
            step_number=previous.step_number if previous else 1,
            executor=previous.executor if previous else None,
        )
        self._last_run = run
        return run

    async def _run(self, run: RunState, max_steps: int) -> AsyncIterator[StreamEvent]:
        run.context.start_clock()
        run.memory.steps.append(TaskStep(run.task))
        output = None
        self.interrupt_switch = False
        for _ in range(max_steps):
            if self.interrupt_switch:
                self.interrupt_switch = False
                raise AgentError("Agent interrupted.")
            await take_turn()  # building the prompt and the request is this step's first stretch of CPU
            if self._planning_due(run):
                async for event in self._plan(run):
                    yield event
            step = ActionStep(step_number=run.step_number)
            try:
                async for delta in self._step(run, step):
                    yield delta
            except AgentRunTimeout as error:
                run.outcome, step.error = "run_timeout", error
                await self._end_step(run, step)
                yield step
                raise
            except AgentError as error:
                step.error = error
            if step.is_final_answer and self.final_answer_checks:
                await self._check_final_answer(run, step)
            await self._end_step(run, step)
            yield step
            if step.is_final_answer:
                output = step.action_output
                break
            run.step_number += 1
        else:
            run.outcome = "max_steps_error"
            step = await self._answer_after_max_steps(run, max_steps)
            output = step.action_output
            await self._call_back(step)
            yield step
        final = FinalAnswerStep(output)
        await self._call_back(final)
        yield final

    async def _end_step(self, run: RunState, step: ActionStep) -> None:
        step.timing.stop()
        run.memory.steps.append(step)
        _log_step(self, step)
        await self._call_back(step)

    async def _check_final_answer(self, run: RunState, step: ActionStep) -> None:
        """smolagents' `final_answer_checks`: a check that returns False or raises sends the model back."""
        for check in self.final_answer_checks:
            name = getattr(check, "__name__", type(check).__name__)
            try:
                extra = {"agent": self} if _accepts_agent(check) else {}  # smolagents 1.26 passes agent=
                passed = check(step.action_output, run.memory, **extra)
                if inspect.isawaitable(passed):
                    passed = await passed
            except Exception as error:
                passed, why = False, f"{type(error).__name__}: {error}"
            else:
                why = "it returned False"
            if not passed:
                step.is_final_answer, step.action_output = False, None
                step.error = AgentError(f"Check {name} failed: {why}. The answer was not accepted; go on.")
                return

    async def _bounded(self, run: RunState, awaitable: Awaitable[T]) -> T:
        """Await within the run's time limit, if it has one; past it, AgentRunTimeout."""
        deadline = run.context.deadline
        if deadline is None:
            return await awaitable
        try:
            async with asyncio.timeout_at(deadline) as scope:
                return await awaitable
        except TimeoutError:
            if not scope.expired():
                raise
            raise AgentRunTimeout(run.context.run_timeout or 0.0, run.step_number) from None

    def _planning_due(self, run: RunState) -> bool:
        interval = self.planning_interval
        return interval is not None and interval > 0 and (run.step_number - 1) % interval == 0

    async def _plan(self, run: RunState) -> AsyncIterator[StreamEvent]:
        tools = "\n".join(f"- {t.name}: {t.description}" for t in self.tools.values())
        first = not any(isinstance(s, PlanningStep) for s in run.memory.steps)
        if first:
            messages = [_user(prompts.INITIAL_PLAN.format(task=run.task, tools=tools))]
        else:
            update = prompts.UPDATE_PLAN.format(step=run.step_number - 1, task=run.task)
            messages = [*run.memory.to_messages(summary_mode=False), _user(update)]
        deltas: list[ChatMessageStreamDelta] = []
        async for delta in self._generate_stream(run, messages):
            deltas.append(delta)
            if self.stream_outputs:
                yield delta
        output = agglomerate_stream_deltas(deltas)
        step = PlanningStep(output.text, messages, output, token_usage=output.token_usage)
        step.timing.stop()
        run.memory.steps.append(step)
        await self._call_back(step)
        yield step

    async def _answer_after_max_steps(self, run: RunState, max_steps: int) -> ActionStep:
        """Out of steps: the model concludes from what it has (as smolagents does), and the run's
        outcome says it never gave a final answer of its own."""
        step = ActionStep(step_number=run.step_number, is_final_answer=True)
        step.error = AgentMaxStepsError(f"Reached the maximum of {max_steps} steps without a final answer.")
        messages = [*run.memory.to_messages(), _user(prompts.FINAL_ANSWER.format(task=run.task))]
        output = await self._generate(run, messages)
        step.model_input_messages, step.model_output_message = messages, output
        step.model_output = step.action_output = output.text
        step.timing.stop()
        run.memory.steps.append(step)
        return step

    def _step(self, run: RunState, step: ActionStep) -> AsyncIterator[ChatMessageStreamDelta]:
        """One action: an async generator of model deltas that fills in `step`."""
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------

    async def _model_output(
        self, run: RunState, messages: list[ChatMessage], step: ActionStep, **kwargs: Any
    ) -> AsyncIterator[ChatMessageStreamDelta]:
        """Call the model for an action step; streams deltas out when `stream_outputs` is on."""
        step.model_input_messages = messages
        if self.stream_outputs:
            deltas: list[ChatMessageStreamDelta] = []
            async for delta in self._generate_stream(run, messages, **kwargs):
                deltas.append(delta)
                yield delta
            output = agglomerate_stream_deltas(deltas)
        else:
            output = await self._generate(run, messages, **kwargs)
        step.model_output_message = output
        step.model_output = output.text
        step.token_usage = output.token_usage

    async def _generate(self, run: RunState, messages: list[ChatMessage], **kwargs: Any) -> ChatMessage:
        try:
            return await self._bounded(run, self.model.agenerate(messages, **kwargs))
        except AgentError:
            raise
        except Exception as error:
            raise AgentGenerationError(f"Error in generating model output: {error}") from error

    async def _generate_stream(
        self, run: RunState, messages: list[ChatMessage], **kwargs: Any
    ) -> AsyncIterator[ChatMessageStreamDelta]:
        deltas = self.model.agenerate_stream(messages, **kwargs)
        try:
            while True:
                try:
                    delta = await self._bounded(run, anext(deltas))
                except StopAsyncIteration:
                    return
                yield delta
        except AgentError:
            raise
        except Exception as error:
            raise AgentGenerationError(f"Error in generating model output: {error}") from error
        finally:
            if (close := getattr(deltas, "aclose", None)) is not None:
                await close()

    async def _in_context(self, run: RunState, step: ActionStep, action: Callable[[], Awaitable[T]]) -> T:
        """Run tools with this run's context visible to them (set and reset within one await).

        `action` makes its awaitable only once the context is set: tasks copy the context they start in.
        """
        run.context.start_step(step.step_number)
        token = current_run.set(run.context)
        try:
            return await self._bounded(run, action())
        finally:
            current_run.reset(token)

    async def _call_back(self, step: Any) -> None:
        for kind, callbacks in self._callbacks.items():
            if isinstance(step, kind):
                for callback, wants_agent in callbacks:
                    result = callback(step, agent=self) if wants_agent else callback(step)
                    if inspect.isawaitable(result):
                        await result


def _user(text: str) -> ChatMessage:
    return ChatMessage("user", [{"type": "text", "text": text}])


def _callbacks_by_type(
    callbacks: Sequence[Callback] | dict[type, Sequence[Callback]] | None,
) -> dict[type, list[tuple[Callback, bool]]]:
    if callbacks is None:
        return {}
    by_type = callbacks if isinstance(callbacks, dict) else {ActionStep: list(callbacks)}
    return {kind: [(cb, _accepts_agent(cb)) for cb in cbs] for kind, cbs in by_type.items()}


def _accepts_agent(callback: Callback) -> bool:
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "agent" or p.kind is p.VAR_KEYWORD for p in parameters)


def _no_images(images: Any) -> None:
    if images:
        raise UnsupportedFeature(
            "images: the runtime's models take text; put image URLs or file paths in the task, "
            "for a tool of yours to open"
        )


def _log_step(agent: MultiStepAgent, step: ActionStep) -> None:
    level = agent.verbosity_level
    if level == LogLevel.OFF:
        return
    if step.error is not None:
        log.log(level.logging_level if level >= LogLevel.ERROR else logging.ERROR, "%s step %d: %s", agent.name,
                step.step_number, step.error)  # fmt: skip
    elif level >= LogLevel.INFO:
        log.info("%s step %d: %s", agent.name, step.step_number, _first_line(step.observations))
    if level >= LogLevel.DEBUG:
        log.debug("%s step %d model output:\n%s", agent.name, step.step_number, step.model_output)


def _first_line(text: str | None) -> str:
    return (text or "").strip().split("\n", 1)[0][:200]


def replay_text(memory: AgentMemory, detailed: bool) -> str:
    lines = []
    for step in memory.steps:
        if isinstance(step, TaskStep):
            lines.append(f"Task: {step.task}")
        elif isinstance(step, PlanningStep):
            lines.append(f"Plan:\n{step.plan}")
        elif isinstance(step, ActionStep):
            lines.append(f"--- Step {step.step_number} ---")
            if detailed and step.model_input_messages:
                lines += [f"[{m.role}] {m.text}" for m in step.model_input_messages]
            lines.append(f"Output: {step.model_output or ''}")
            if step.observations:
                lines.append(f"Observations: {step.observations}")
            if step.error is not None:
                lines.append(f"Error: {step.error}")
    return "\n".join(lines)
