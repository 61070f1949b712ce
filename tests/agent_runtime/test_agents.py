"""Agents end to end with scripted models: code actions, parallel tool calls, concurrency, streaming."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Literal

import pytest

from agent_runtime import (
    ActionStep,
    AgentMaxStepsError,
    AgentParsingError,
    AgentRunTimeout,
    ChatMessageStreamDelta,
    CodeAgent,
    FinalAnswerStep,
    PlanningStep,
    ScriptedModel,
    ToolCallingAgent,
    tool,
    waiting_for_person,
)
from agent_runtime.models import tool_call_message


@tool
async def lookup(key: str) -> str:
    """Looks a key up, slowly.

    Args:
        key: What to look up.
    """
    await asyncio.sleep(0.2)
    return f"value-of-{key}"


@tool
async def double(x: int) -> int:
    """Doubles a number.

    Args:
        x: The number.
    """
    await asyncio.sleep(0.01)
    return 2 * x


def last_user_text(messages: list[dict[str, Any]]) -> str:
    return str(messages[-1]["content"])


async def test_code_agent_calls_an_async_tool_without_await() -> None:
    model = ScriptedModel(
        [
            "Thought: look it up.\n```python\nv = lookup('a')\nprint(v)\n```",
            "Thought: done.\n```python\nfinal_answer(v.upper())\n```",
        ]
    )
    agent = CodeAgent([lookup], model)
    assert await agent.arun("find a") == "VALUE-OF-A"
    steps = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
    assert [s.step_number for s in steps] == [1, 2]
    assert steps[0].observations is not None and "value-of-a" in steps[0].observations
    assert "value-of-a" in last_user_text(model.requests[1]["messages"])  # the model saw the observation


async def test_code_errors_become_observations_and_the_agent_recovers() -> None:
    model = ScriptedModel(["```python\nundefined_name + 1\n```", "```python\nfinal_answer(double(2))\n```"])
    agent = CodeAgent([double], model)
    assert await agent.arun("compute") == 4
    first = agent.memory.steps[1]
    assert isinstance(first, ActionStep)
    assert first.error is not None and "NameError" in str(first.error)
    assert "NameError" in last_user_text(model.requests[1]["messages"])


async def test_output_without_code_is_reported_to_the_model() -> None:
    model = ScriptedModel(["I am not sure what to do here.", "```python\nfinal_answer('ok')\n```"])
    agent = CodeAgent([], model)
    assert await agent.arun("x") == "ok"
    assert isinstance(agent.memory.steps[1].error, AgentParsingError)


async def test_tool_calling_agent_runs_one_steps_calls_concurrently() -> None:
    model = ScriptedModel(
        [
            tool_call_message(("lookup", {"key": "a"}), ("lookup", {"key": "b"}), ("lookup", {"key": "c"})),
            tool_call_message(("final_answer", {"answer": "three values"})),
        ]
    )
    agent = ToolCallingAgent([lookup], model)
    started = time.monotonic()
    assert await agent.arun("look up a, b and c") == "three values"
    assert time.monotonic() - started < 0.5  # three 0.2 s calls at once, not 0.6 s
    observations = agent.memory.steps[1].observations
    assert observations == "[lookup] value-of-a\n[lookup] value-of-b\n[lookup] value-of-c"
    assert model.requests[0]["tools"][0]["function"]["name"] == "lookup"


async def test_a_call_that_stops_the_run_stops_the_steps_other_calls() -> None:
    """Not an error but a stop (like a worker's RunStopped): the sibling calls must not go on acting."""

    class Stop(BaseException):
        pass

    acted: list[str] = []

    @tool
    async def stop_now() -> str:
        """Stops the run."""
        await asyncio.sleep(0.01)
        raise Stop

    @tool
    async def act_later() -> str:
        """Acts after a while."""
        await asyncio.sleep(0.2)
        acted.append("acted")
        return "done"

    model = ScriptedModel([tool_call_message(("stop_now", {}), ("act_later", {}))])
    with pytest.raises(Stop):
        await ToolCallingAgent([stop_now, act_later], model).arun("go")
    await asyncio.sleep(0.3)
    assert acted == []


async def test_tool_calling_agent_reports_bad_calls_without_sinking_good_ones() -> None:
    model = ScriptedModel(
        [
            tool_call_message(("lookup", {"key": "a"}), ("lookup", {"nope": 1}), ("missing_tool", {})),
            tool_call_message(("final_answer", {"answer": "ok"})),
        ]
    )
    agent = ToolCallingAgent([lookup], model)
    assert await agent.arun("x") == "ok"
    observations = agent.memory.steps[1].observations or ""
    assert "value-of-a" in observations
    assert "has no argument(s) ['nope']" in observations
    assert "unknown tool 'missing_tool'" in observations


def answer_for_task(messages: list[dict[str, Any]]) -> str:
    """A model shared by concurrent runs: it answers each run from that run's own messages."""
    text = "\n".join(str(m["content"]) for m in messages)
    number = int(re.search(r"double (\d+)", text).group(1))
    if "Observation" not in text:
        return f"```python\nr = double({number})\nprint(r)\n```"
    return "```python\nfinal_answer(r)\n```"


async def test_concurrent_runs_on_one_instance_do_not_cross_talk() -> None:
    agent = CodeAgent([double], ScriptedModel(answer_for_task))
    seen: dict[str, list[int]] = {}

    def record(step: ActionStep, agent: Any = None) -> None:
        seen.setdefault(step.model_output or "", []).append(step.step_number)

    agent._callbacks = {ActionStep: [(record, True)]}
    results = await asyncio.gather(*(agent.arun(f"double {n}") for n in range(100)))
    assert results == [2 * n for n in range(100)]
    assert all(numbers == [1] for output, numbers in seen.items() if "double(" in output)  # every run at step 1
    assert len(agent.memory.action_steps) == 2  # the last run's own memory only


async def test_streaming_yields_steps_as_they_happen() -> None:
    model = ScriptedModel(["```python\nx = double(1)\n```", "```python\nfinal_answer(x)\n```"])
    agent = CodeAgent([double], model)
    events = [event async for event in agent.arun("go", stream=True)]
    assert [type(e).__name__ for e in events] == ["ActionStep", "ActionStep", "FinalAnswerStep"]
    assert isinstance(events[-1], FinalAnswerStep) and events[-1].output == 2


async def test_stream_outputs_yields_model_deltas_too() -> None:
    model = ScriptedModel(["```python\nfinal_answer('streamed')\n```"], chunk_size=4)
    agent = CodeAgent([], model, stream_outputs=True)
    events = [event async for event in agent.arun("go", stream=True)]
    deltas = [e.content for e in events if isinstance(e, ChatMessageStreamDelta) and e.content]
    assert len(deltas) > 3
    assert "".join(deltas) == "```python\nfinal_answer('streamed')\n```"
    assert isinstance(events[-1], FinalAnswerStep) and events[-1].output == "streamed"


async def test_planning_runs_every_interval_and_streams() -> None:
    replies = ["1. double it", "```python\nx = double(1)\n```", "```python\nx = double(x)\n```",
               "2. finish", "```python\nfinal_answer(x)\n```"]  # fmt: skip
    agent = CodeAgent([double], ScriptedModel(replies), planning_interval=2, stream_outputs=True)
    events = [event async for event in agent.arun("go", stream=True)]
    kinds = [type(e).__name__ for e in events if not isinstance(e, ChatMessageStreamDelta)]
    assert kinds == ["PlanningStep", "ActionStep", "ActionStep", "PlanningStep", "ActionStep", "FinalAnswerStep"]
    plans = [e.plan for e in events if isinstance(e, PlanningStep)]
    assert plans == ["1. double it", "2. finish"]
    assert any(isinstance(e, ChatMessageStreamDelta) for e in events[: events.index(next(
        e for e in events if isinstance(e, PlanningStep)))])  # fmt: skip
    assert events[-1].output == 4


async def test_sync_and_async_callbacks_see_every_step() -> None:
    seen: list[tuple[str, Any]] = []

    def sync_callback(step: ActionStep) -> None:
        seen.append(("sync", step.step_number))

    async def async_callback(step: ActionStep, agent: CodeAgent) -> None:
        await asyncio.sleep(0)
        seen.append(("async", agent.name))

    model = ScriptedModel(["```python\nx = 1\n```", "```python\nfinal_answer(x)\n```"])
    agent = CodeAgent([], model, step_callbacks=[sync_callback, async_callback], name="calc")
    assert await agent.arun("go") == 1
    assert seen == [("sync", 1), ("async", "calc"), ("sync", 2), ("async", "calc")]


async def test_max_steps_asks_the_model_for_a_final_answer() -> None:
    model = ScriptedModel(["```python\nx = 1\n```"] * 3 + ["my best guess"])
    agent = CodeAgent([], model, max_steps=3)
    assert await agent.arun("go") == "my best guess"
    assert len(agent.memory.action_steps) == 4  # three actions and the forced answer
    assert "could not finish" in last_user_text(model.requests[-1]["messages"])
    assert isinstance(agent.memory.action_steps[-1].error, AgentMaxStepsError)


async def test_full_results_say_whether_the_agent_gave_its_own_final_answer() -> None:
    finishes = CodeAgent([], ScriptedModel(["```python\nfinal_answer(7)\n```"]))
    result = await finishes.arun("go", return_full_result=True)
    assert (result.output, result.state) == (7, "success")
    assert result.timing.duration is not None and result.steps[0]["task"] == "go"

    runs_out = CodeAgent([], ScriptedModel(["```python\nx = 1\n```"] * 2 + ["a guess"]), max_steps=2)
    result = await runs_out.arun("go", return_full_result=True)
    assert (result.output, result.state) == ("a guess", "max_steps_error")


@tool
async def wait_for_person(topic: str) -> str:
    """Waits for a person who takes a long time.

    Args:
        topic: What to ask about.
    """
    with waiting_for_person():
        await asyncio.sleep(30)
    return "never"


async def test_run_timeout_bounds_the_whole_run_including_waits_for_people() -> None:
    def model() -> ScriptedModel:
        calls = (("wait_for_person", {"topic": "a"}), ("wait_for_person", {"topic": "b"}))
        return ScriptedModel([tool_call_message(*calls)])

    agent = ToolCallingAgent([wait_for_person], model(), run_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(AgentRunTimeout, match=r"time limit of 0\.3 s at step 1"):
        await agent.arun("ask twice")
    assert time.monotonic() - started < 1
    assert isinstance(agent.memory.action_steps[-1].error, AgentRunTimeout)  # the interrupted step is kept

    result = await ToolCallingAgent([wait_for_person], model()).arun("ask", run_timeout=0.2, return_full_result=True)
    assert (result.output, result.state) == (None, "run_timeout")


async def test_a_streamed_run_past_its_time_limit_ends_with_the_error_after_its_last_step() -> None:
    model = ScriptedModel(["```python\nwait_for_person('deploy')\n```"])
    agent = CodeAgent([wait_for_person], model, run_timeout=0.3, executor_timeout=0.1)
    seen: list[object] = []

    async def follow() -> None:
        async for event in agent.arun("go", stream=True):
            seen.append(event)

    with pytest.raises(AgentRunTimeout):
        await follow()
    assert [type(e).__name__ for e in seen] == ["ActionStep"]  # the code budget never fired: a person's wait


def test_the_sync_face_has_run_timeout_and_full_results_too() -> None:
    model = ScriptedModel(["```python\nwait_for_person('x')\n```"])
    agent = CodeAgent([wait_for_person], model, executor_timeout=0.05)
    result = agent.run("go", run_timeout=0.3, return_full_result=True)
    assert result.state == "run_timeout"


def test_sync_run_outside_a_loop() -> None:
    model = ScriptedModel(["```python\nfinal_answer(double(5))\n```"])
    assert CodeAgent([double], model).run("go") == 10


async def test_sync_run_inside_a_running_loop_blocks_and_works() -> None:
    model = ScriptedModel(["```python\nfinal_answer(double(6))\n```"])
    assert CodeAgent([double], model).run("go") == 12


def test_sync_run_can_stream() -> None:
    model = ScriptedModel(["```python\nfinal_answer(1)\n```"])
    events = list(CodeAgent([], model).run("go", stream=True))
    assert isinstance(events[-1], FinalAnswerStep)


async def test_reset_false_continues_the_previous_run() -> None:
    model = ScriptedModel(
        ["```python\nkept = double(3)\nfinal_answer(kept)\n```", "```python\nfinal_answer(kept + 1)\n```"]
    )
    agent = CodeAgent([double], model)
    assert await agent.arun("first") == 6
    assert await agent.arun("second", reset=False) == 7
    tasks = [s.task for s in agent.memory.steps if type(s).__name__ == "TaskStep"]
    assert tasks == ["first", "second"]


async def test_additional_args_become_variables() -> None:
    model = ScriptedModel(["```python\nfinal_answer(double(amount))\n```"])
    assert await CodeAgent([double], model).arun("go", additional_args={"amount": 21}) == 42


@pytest.mark.parametrize("agent_class", [CodeAgent, ToolCallingAgent])
async def test_model_shared_by_agents_respects_a_rate_limit(agent_class: type) -> None:
    reply = (
        "```python\nfinal_answer(1)\n```"
        if agent_class is CodeAgent
        else tool_call_message(("final_answer", {"answer": 1}))
    )
    model = ScriptedModel([reply] * 3, requests_per_minute=600)  # one call per 0.1 s
    started = time.monotonic()
    await asyncio.gather(*(agent_class([], model).arun("go") for _ in range(3)))
    assert time.monotonic() - started >= 0.19


async def test_argument_text_that_is_not_json_is_an_error_observation() -> None:
    from agent_runtime.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction

    broken = ChatMessage(
        "assistant",
        "",
        tool_calls=[ChatMessageToolCall("c0", ChatMessageToolCallFunction("double", '{"x": 1'))],
    )
    model = ScriptedModel([broken, tool_call_message(("final_answer", {"answer": "ok"}))])
    agent = ToolCallingAgent([double], model)
    assert await agent.arun("go") == "ok"
    assert "must be a JSON object" in (agent.memory.action_steps[0].observations or "")


def test_breaking_out_of_a_sync_stream_runs_no_further_step() -> None:
    calls: list[int] = []

    @tool
    def record(n: int) -> int:
        """Records a call.

        Args:
            n: The step.
        """
        calls.append(n)
        return n

    model = ScriptedModel(["```python\nrecord(1)\n```", "```python\nrecord(2)\n```", "```python\nfinal_answer(3)\n```"])
    for event in CodeAgent([record], model).run("go", stream=True):
        if isinstance(event, ActionStep):
            break
    time.sleep(0.1)
    assert calls == [1]


async def test_literal_choices_are_enforced() -> None:
    from agent_runtime import AgentToolCallError

    @tool
    def paint(color: Literal["red", "blue"]) -> str:
        """Paints.

        Args:
            color: The color.
        """
        return color

    assert paint.inputs["color"] == {"type": "string", "description": "The color.", "enum": ["red", "blue"]}
    assert await paint.acall("red") == "red"
    with pytest.raises(AgentToolCallError, match="must be one of"):
        await paint.acall("green")
