"""smolagents code with the import changed to agent_runtime: 29 snippets in smolagents' documented style.

Each either works as it does on smolagents, or fails at once with `UnsupportedFeature` naming what to use
instead. Sync `agent.run` throughout, as smolagents users write it; the models are scripted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import pytest

from agent_runtime import (
    ActionStep,
    AgentError,
    ChatMessage,
    CodeAgent,
    FinalAnswerStep,
    LogLevel,
    MessageRole,
    OpenAIServerModel,
    RunResult,
    ScriptedModel,
    Tool,
    ToolCallingAgent,
    UnsupportedFeature,
    tool,
)
from agent_runtime.local_python_executor import LocalPythonExecutor, evaluate_python_code
from agent_runtime.models import tool_call_message
from agent_runtime.monitoring import LogLevel as MonitoringLogLevel


@tool
def get_weather(city: str) -> str:
    """Gets the weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


class Multiply(Tool):
    name = "multiply"
    description = "Multiplies two numbers."
    inputs: ClassVar[dict[str, dict[str, Any]]] = {
        "a": {"type": "number", "description": "first"},
        "b": {"type": "number", "description": "second"},
    }
    output_type = "number"

    def forward(self, a: float, b: float) -> float:
        return a * b


def code(source: str) -> str:
    return f"Thought: go.\n```python\n{source}\n```"


def final(answer: str) -> str:
    return code(f"final_answer({answer!r})")


# -- what ran unchanged before ---------------------------------------------------------------------------


def test_01_a_code_agent_with_a_tool_function() -> None:
    agent = CodeAgent(tools=[get_weather], model=ScriptedModel([code("final_answer(get_weather('Paris'))")]))
    assert agent.run("Weather in Paris?") == "sunny in Paris"


def test_02_a_tool_calling_agent_with_a_tool_class() -> None:
    model = ScriptedModel(
        [tool_call_message(("multiply", {"a": 6, "b": 7})), tool_call_message(("final_answer", {"answer": "42"}))]
    )
    assert ToolCallingAgent(tools=[Multiply()], model=model).run("6 times 7?") == "42"


def test_03_streaming_the_steps() -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([code("print(1)"), final("done")]))
    steps = list(agent.run("count", stream=True))
    assert [type(s).__name__ for s in steps] == ["ActionStep", "ActionStep", "FinalAnswerStep"]
    assert isinstance(steps[-1], FinalAnswerStep) and steps[-1].output == "done"


def test_04_reading_the_memory() -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([code("print('hi')"), final("ok")]))
    agent.run("say hi")
    actions = [s for s in agent.memory.steps if isinstance(s, ActionStep)]
    assert "hi" in (actions[0].observations or "") and actions[-1].is_final_answer


def test_05_step_callbacks() -> None:
    seen: list[int] = []
    agent = CodeAgent(
        tools=[],
        model=ScriptedModel([code("x = 1"), final("ok")]),
        step_callbacks=[lambda s: seen.append(s.step_number)],
    )
    agent.run("go")
    assert seen == [1, 2]


def test_06_additional_authorized_imports() -> None:
    agent = CodeAgent(
        tools=[],
        model=ScriptedModel([code("import math\nfinal_answer(math.sqrt(16))")]),
        additional_authorized_imports=["math"],
    )
    assert agent.run("sqrt 16") == 4.0


def test_07_models_take_chat_messages() -> None:
    model = ScriptedModel(["pong"])
    reply = model.generate([ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "ping"}])])
    assert reply.content == "pong" and reply.role == MessageRole.ASSISTANT


# -- what broke before ------------------------------------------------------------------------------------


def test_08_verbosity_level_and_log_level(caplog: pytest.LogCaptureFixture) -> None:
    assert MonitoringLogLevel is LogLevel
    agent = CodeAgent(tools=[], model=ScriptedModel([final("ok")]), verbosity_level=LogLevel.DEBUG)
    with caplog.at_level(logging.DEBUG, logger="agent_runtime.agents"):
        agent.run("go")
    assert any("model output" in r.message for r in caplog.records)
    quiet = CodeAgent(tools=[], model=ScriptedModel([final("ok")]), verbosity_level=LogLevel.OFF)
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="agent_runtime.agents"):
        quiet.run("go")
    assert caplog.records == []


def test_09_verbosity_as_a_plain_number() -> None:
    assert CodeAgent(tools=[], model=ScriptedModel([]), verbosity_level=0).verbosity_level is LogLevel.ERROR


def test_10_add_base_tools_names_the_alternative() -> None:
    with pytest.raises(UnsupportedFeature, match=r"pass the tools you want in tools="):
        CodeAgent(tools=[], model=ScriptedModel([]), add_base_tools=True)
    CodeAgent(tools=[], model=ScriptedModel([]), add_base_tools=False)


def test_11_return_full_result() -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([final("ok")]), return_full_result=True)
    result = agent.run("go")
    assert isinstance(result, RunResult) and (result.output, result.state) == ("ok", "success")


def test_12_final_answer_checks() -> None:
    def long_enough(answer: Any, memory: Any, agent: Any) -> bool:  # smolagents 1.26's signature
        assert isinstance(agent, CodeAgent) and memory is agent.memory
        return len(str(answer)) > 3

    agent = CodeAgent(
        tools=[], model=ScriptedModel([final("no"), final("a real answer")]), final_answer_checks=[long_enough]
    )
    assert agent.run("answer well") == "a real answer"
    refused = next(s for s in agent.memory.steps if isinstance(s, ActionStep))
    assert "Check long_enough failed" in str(refused.error)


def test_13_managed_agents() -> None:
    helper = CodeAgent(tools=[get_weather], model=ScriptedModel([code("final_answer(get_weather(city))".replace("city", "'Oslo'"))]),
                       name="weather_agent", description="Knows the weather.")  # fmt: skip
    boss = CodeAgent(
        tools=[],
        model=ScriptedModel([code("r = weather_agent(task='weather in Oslo')\nfinal_answer(r)")]),
        managed_agents=[helper],
    )
    assert "sunny in Oslo" in boss.run("Ask the weather agent") and "weather_agent" in boss.tools


def test_14_a_managed_agent_needs_a_description() -> None:
    with pytest.raises(AgentError, match="needs a description"):
        CodeAgent(
            tools=[], model=ScriptedModel([]), managed_agents=[CodeAgent(tools=[], model=ScriptedModel([]), name="x")]
        )


def test_15_max_tool_threads() -> None:
    running, most = [0], [0]

    @tool
    async def slow_lookup(key: str) -> str:
        """Looks a key up, slowly.

        Args:
            key: The key.
        """
        running[0] += 1
        most[0] = max(most[0], running[0])
        await asyncio.sleep(0.05)
        running[0] -= 1
        return f"value of {key}"

    calls = tool_call_message(*[("slow_lookup", {"key": k}) for k in "abcde"])
    model = ScriptedModel([calls, tool_call_message(("final_answer", {"answer": "done"}))])
    agent = ToolCallingAgent(tools=[slow_lookup], model=model, max_tool_threads=2)
    assert agent.run("look up five keys") == "done"
    assert most[0] == 2  # five calls, at most two at a time
    observations = next(s for s in agent.memory.steps if isinstance(s, ActionStep)).observations or ""
    assert all(f"value of {k}" in observations for k in "abcde")


def test_16_executor_type_local() -> None:
    assert CodeAgent(tools=[], model=ScriptedModel([final("ok")]), executor_type="local").run("go") == "ok"


def test_17_other_executor_types_name_the_alternative() -> None:
    with pytest.raises(UnsupportedFeature, match=r"executor_type='local'"):
        CodeAgent(tools=[], model=ScriptedModel([]), executor_type="docker")


def test_18_executor_kwargs() -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([final("ok")]), executor_kwargs={"timeout_seconds": None})
    assert agent.run("go") == "ok"
    with pytest.raises(UnsupportedFeature, match="supported are"):
        CodeAgent(tools=[], model=ScriptedModel([]), executor_kwargs={"api_key": "x"})


def test_19_max_print_outputs_length() -> None:
    agent = CodeAgent(
        tools=[], model=ScriptedModel([code("print('x' * 500)"), final("ok")]), max_print_outputs_length=100
    )
    agent.run("print a lot")
    observations = next(s for s in agent.memory.steps if isinstance(s, ActionStep)).observations or ""
    assert observations.count("x") < 200


def test_20_code_block_tags() -> None:
    tagged = CodeAgent(
        tools=[],
        model=ScriptedModel(["<python>final_answer('tags')</python>"]),
        code_block_tags=("<python>", "</python>"),
    )
    assert tagged.run("go") == "tags"
    fenced = CodeAgent(tools=[], model=ScriptedModel([final("md")]), code_block_tags="markdown")
    assert fenced.run("go") == "md"


def test_21_the_python_executor() -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([code("final_answer(x * 2)")]))
    agent.python_executor.send_variables({"x": 21})
    assert agent.run("double x") == 42
    assert agent.python_executor.state["x"] == 21


def test_22_write_memory_to_messages() -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([final("ok")]))
    agent.run("go")
    messages = agent.write_memory_to_messages()
    assert messages[0].role == MessageRole.SYSTEM and any("go" in m.text for m in messages)


def test_23_replay(capsys: pytest.CaptureFixture[str]) -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([code("print('step one')"), final("ok")]))
    agent.run("do it")
    agent.replay()
    shown = capsys.readouterr().out
    assert "Task: do it" in shown and "Step 1" in shown and "step one" in shown


def test_24_interrupt() -> None:
    def stop(step: ActionStep, agent: CodeAgent) -> None:
        agent.interrupt()

    agent = CodeAgent(tools=[], model=ScriptedModel([code("x = 1"), final("never")]), step_callbacks=[stop])
    with pytest.raises(AgentError, match="Agent interrupted"):
        agent.run("go")


def test_25_tool_to_dict() -> None:
    described = get_weather.to_dict()
    assert (described["name"], described["output_type"]) == ("get_weather", "string")
    assert "def get_weather" in (described["code"] or "") and "city" in described["inputs"]
    assert "class Multiply" in (Multiply().to_dict()["code"] or "")


def test_26_images_name_the_alternative() -> None:
    agent = CodeAgent(tools=[], model=ScriptedModel([final("ok")]))
    with pytest.raises(UnsupportedFeature, match="put image URLs or file paths in the task"):
        agent.run("describe", images=["cat.png"])


def test_27_the_local_python_executor_module() -> None:
    executor = LocalPythonExecutor(additional_authorized_imports=["math"])
    executor.send_tools({"multiply": Multiply()})
    assert executor("import math\nmultiply(a=2, b=math.pi)").output == pytest.approx(6.283, rel=1e-3)


def test_28_evaluate_python_code() -> None:
    state: dict[str, Any] = {"base": 10}
    output, is_final = evaluate_python_code(
        "total = base + add(1)\ntotal", static_tools={"add": lambda n: n + 1}, state=state
    )
    assert (output, is_final, state["total"]) == (12, False, 12)


def test_29_flatten_messages_as_text() -> None:
    model = OpenAIServerModel(
        model_id="gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="x", flatten_messages_as_text=True
    )
    request = model._request(
        [ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": "hello"}])], None, None, None, {}
    )
    assert request["messages"] == [{"role": "user", "content": "hello"}]
    assert "flatten_messages_as_text" not in request  # an option of ours, not sent to the server
